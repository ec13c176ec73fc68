#!/usr/bin/env bash
# The monitoring kit in deploy/: the Prometheus rules pass `promtool check rules` and their unit
# tests (`promtool test rules`), the Grafana dashboard is valid JSON, and every mpfailover_*
# metric the rules and the dashboard query is one the daemon exports (server/src/metrics_text.cpp),
# so renaming a metric without updating the kit fails here.
# Usage: monitoring_test.sh SOURCE_DIR
set -uo pipefail
src=$1
rules=$src/deploy/prometheus/mpfailover-rules.yml
rules_test=$src/deploy/prometheus/mpfailover-rules.test.yml
dashboard=$src/deploy/grafana/mpfailover.json
metrics_source=$src/server/src/metrics_text.cpp
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

if ! command -v promtool >/dev/null; then
    echo "FAIL: promtool not found"
    echo "hint: install Debian's prometheus package (deploy/install-deps.sh does)"
    exit 1
fi

promtool check rules "$rules" || fail "promtool check rules $rules"
# promtool resolves rule_files relative to the test file's directory.
(cd "$(dirname "$rules_test")" && promtool test rules "$(basename "$rules_test")") ||
    fail "promtool test rules $rules_test"

python3 -m json.tool "$dashboard" >/dev/null || fail "$dashboard is not valid JSON"

# What the daemon exports: every "mpfailover_..." string literal in metrics_text.cpp.
exported=$(grep -o '"mpfailover_[a-z0-9_]*"' "$metrics_source" | tr -d '"' | sort -u)
[[ -n $exported ]] || fail "no metric names found in $metrics_source"

# What the kit queries: the expressions of the rules and the dashboard's targets/variables.
queried_rules=$(python3 -c '
import sys, yaml
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        print(r["expr"])' "$rules" | grep -o 'mpfailover_[a-z0-9_]*' | sort -u)
queried_dashboard=$(python3 -c '
import json, sys
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k in ("expr", "query", "definition") and isinstance(v, str):
                print(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(json.load(open(sys.argv[1])))' "$dashboard" | grep -o 'mpfailover_[a-z0-9_]*' | sort -u)

[[ -n $queried_rules ]] || fail "no mpfailover_ metric found in the rules' expressions"
[[ -n $queried_dashboard ]] || fail "no mpfailover_ metric found in the dashboard's queries"
for m in $queried_rules; do
    grep -qx "$m" <<<"$exported" || fail "the rules query $m, which metrics_text.cpp does not export"
done
for m in $queried_dashboard; do
    grep -qx "$m" <<<"$exported" ||
        fail "the dashboard queries $m, which metrics_text.cpp does not export"
done

if ((failures > 0)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "monitoring kit ok: $(wc -l <<<"$queried_rules") metrics in the rules, $(wc -l <<<"$queried_dashboard") in the dashboard"
