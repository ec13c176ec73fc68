#!/usr/bin/env bash
# The README's commands from a checkout PostgreSQL cannot read (issue #13): a clone in /root is
# mode 0700, the test clusters run as user "postgres", and the capture module must still load.
# Builds a stand-in checkout in a 0700 folder owned by root (tests/support/pg_cluster.sh and the
# built module at build/replicator/pgmodule, as in a real tree), starts a cluster with that
# script from inside the folder, and LOADs mpfailover_capture. Fails with "could not access
# file" when the server is pointed into the checkout. Root only (as non-root the server runs as
# the caller, who can read the checkout). Takes ~3 s. The EXIT trap stops the cluster.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
module=${MPF_PG_MODULE_DIR:?MPF_PG_MODULE_DIR: where mpfailover_capture.so was built}/mpfailover_capture.so
pg_bin=${MPF_PG_BINDIR:-/usr/lib/postgresql/15/bin}
[[ $(id -u) -eq 0 ]] || { echo "module_access_test: needs root" >&2; exit 1; }
[[ -f $module ]] || { echo "module_access_test: no module \"$module\"" >&2; exit 1; }

work=$(mktemp -d /tmp/mpf-modaccess.XXXXXX) # mode 0700, owner root: like /root/<clone>
checkout=$work/checkout
cluster=$(dirname "$work")/$(basename "$work")-pg # outside the 0700 folder, as the suite's is
cleanup() {
  "$checkout/tests/support/pg_cluster.sh" stop "$cluster" >/dev/null 2>&1 || true
  rm -rf "$work" "$cluster"
}
trap cleanup EXIT
mkdir -p "$checkout/tests/support" "$checkout/build/replicator/pgmodule"
chmod 0700 "$work" "$checkout"
cp "$here/../support/pg_cluster.sh" "$checkout/tests/support/"
cp "$module" "$checkout/build/replicator/pgmodule/"

# Sanity: postgres really cannot read the stand-in checkout (else this test proves nothing).
if runuser -u postgres -- test -r "$checkout/build/replicator/pgmodule/mpfailover_capture.so"; then
  echo "module_access_test: postgres can read \"$checkout\"; the test would prove nothing" >&2
  exit 1
fi

cd "$checkout/build"
conninfo=$(env -u MPF_PG_MODULE_DIR "$checkout/tests/support/pg_cluster.sh" start "$cluster" 54339)
if ! out=$("$pg_bin/psql" "$conninfo" -X -Atq -v ON_ERROR_STOP=1 \
  -c "LOAD 'mpfailover_capture'" -c "SELECT 'loaded'" 2>&1); then
  echo "module_access_test: FAILED: the server could not load the capture module:" >&2
  echo "$out" >&2
  exit 1
fi
[[ $out == loaded ]] || { echo "module_access_test: unexpected output: $out" >&2; exit 1; }
echo "module_access_test: passed (capture module loaded by a cluster started from a 0700 checkout)"
