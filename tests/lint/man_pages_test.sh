#!/usr/bin/env bash
# The manual pages the .deb installs (built from docs/cli.md by deploy/man/md2man.py, target
# "man"): `man -l` renders each without a warning, with its NAME line, and mpfailover(1) has a
# section for every command `mpfailover --help` lists.
# Usage: man_pages_test.sh MAN_DIR MPFAILOVER_BINARY
set -uo pipefail
dir=$1
cli=$2
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
command -v man >/dev/null || { echo "FAIL: man not found; hint: apt-get install man-db"; exit 1; }

render() { # render PAGE.gz -> text on stdout, warnings in $dir/.warnings
    MANWIDTH=100 man --warnings=all -l "$1" 2>"$dir/.warnings"
}
for page in mpfailover.1.gz mpfailoverd.8.gz; do
    if [[ ! -s $dir/$page ]]; then
        fail "$dir/$page missing; hint: cmake --build build --target man"
        continue
    fi
    text=$(render "$dir/$page")
    [[ -s $dir/.warnings ]] && fail "$page: man warns: $(tr '\n' ' ' <"$dir/.warnings")"
    name=${page%%.*}
    grep -qE "^ +$name - " <<<"$text" || fail "$page: no NAME line '$name - …'"
    for heading in SYNOPSIS DESCRIPTION OPTIONS "EXIT CODES" FILES "SEE ALSO"; do
        grep -qx "$heading" <<<"$text" || fail "$page: no $heading section"
    done
    if [[ $name == mpfailover ]]; then
        for c in $("$cli" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } /^$/ { on = 0 }'); do
            grep -qE "^   $c$" <<<"$text" || fail "mpfailover(1) has no section for command '$c'"
        done
    fi
done
rm -f "$dir/.warnings"
if ((failures > 0)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "man pages ok"
