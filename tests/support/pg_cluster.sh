#!/usr/bin/env bash
# Throwaway PostgreSQL 15 cluster for tests and benchmarks.
#   pg_cluster.sh start DIR PORT   initdb into DIR (if empty) and start; prints the conninfo
#   pg_cluster.sh stop DIR         stop (fast) and remove DIR
# Runs the server as user "postgres" when invoked as root (initdb refuses root).
# The socket lives in DIR; nothing listens on TCP.
set -euo pipefail
PG_BIN=${MPF_PG_BINDIR:-/usr/lib/postgresql/15/bin}
# Where the capture module (mpfailover_capture.so) was built. The server (user postgres) never
# loads it from there: a checkout may sit in a folder postgres cannot read (a clone in /root,
# mode 0700). Each start copies it into DIR/lib, which belongs to the cluster (one per build
# tree and pair node, so trees never overwrite each other's module) and goes with it on stop.
# PostgreSQL's own lib directory ($libdir) is searched first, so an installed package wins.
MODULE_DIR=${MPF_PG_MODULE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/build/replicator/pgmodule}
[[ $MODULE_DIR == /* ]] || MODULE_DIR=$(pwd)/$MODULE_DIR
MODULE=mpfailover_capture.so
cmd=${1:?usage: pg_cluster.sh start|stop DIR [PORT]}
dir=${2:?usage: pg_cluster.sh start|stop DIR [PORT]}
[[ $dir == /* ]] || dir=$(pwd)/$dir
# Run the PostgreSQL tools from "/": the caller's folder may be one postgres cannot enter.
cd /

as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Copy the built module into DIR/lib (readable by postgres). Through a temporary name and a
# rename: a running backend keeps the file it mapped, new ones load the new build.
install_module() {
  [[ -f $MODULE_DIR/$MODULE ]] || return 0 # not built here: only an installed one ($libdir)
  mkdir -p "$dir/lib"
  cp "$MODULE_DIR/$MODULE" "$dir/lib/.$MODULE.tmp"
  chmod 0755 "$dir/lib" "$dir/lib/.$MODULE.tmp"
  mv -f "$dir/lib/.$MODULE.tmp" "$dir/lib/$MODULE"
}

case "$cmd" in
  start)
    port=${3:?usage: pg_cluster.sh start DIR PORT}
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      mkdir -p "$dir"
      [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir"
      as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
      cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
max_connections = 100
shared_buffers = 128MB
track_commit_timestamp = on
max_prepared_transactions = 10
dynamic_library_path = '\$libdir:$dir/lib'
log_min_messages = warning
log_line_prefix = '%m [%p] '
CONF
    fi
    install_module
    # Already running (a previous run that was interrupted, or a developer's): reuse it.
    if as_pg "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      echo "host=$dir port=$port user=postgres dbname=postgres"
      exit 0
    fi
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
      { tail -20 "$dir/server.log" >&2; exit 1; }
    echo "host=$dir port=$port user=postgres dbname=postgres"
    ;;
  stop)
    if [[ -f "$dir/data/postmaster.pid" ]]; then
      as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: pg_cluster.sh start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
