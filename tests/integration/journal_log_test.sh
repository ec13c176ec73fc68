#!/usr/bin/env bash
# The daemon's log lines reach journald with their priority (journalctl -p warning works), and
# without journald carry a timestamp with its zone. Root only: a private mount namespace puts a
# stand-in journal socket at /run/systemd/journal/socket (socat receives the native protocol's
# datagrams, as journald would); nothing outside the namespace is touched.
#
# The daemon is pointed at a database that does not exist, so it logs StartupRefused at error
# level and exits: one line, no PostgreSQL needed.
set -euo pipefail
daemon=${MPF_DAEMON:?MPF_DAEMON: path of mpfailoverd}
work=$(mktemp -d /tmp/mpft_journal.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat > "$work/node.conf" <<CONF
[node]
name = a
database = host=/nonexistent port=1 dbname=nothing connect_timeout=1
[peer]
name = b
address = 127.0.0.1
[replication]
listen = 127.0.0.1
port = 1
[security]
mode = plain
[control]
socket = $work/ctl.sock
CONF

# 1. No journal: stderr, the timestamp with its UTC offset.
set +e
"$daemon" --config "$work/node.conf" 2> "$work/stderr.txt"
rc=$?
set -e
[[ $rc -ne 0 ]] || { echo "FAIL: the daemon started against a missing database"; exit 1; }
if ! grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} error StartupRefused' "$work/stderr.txt"; then
  echo "FAIL: no zoned timestamp on the stderr line:"; cat "$work/stderr.txt"; exit 1
fi

# 2. Under systemd (JOURNAL_STREAM names stderr): the journal's native protocol, PRIORITY=3.
unshare -m --propagation private bash -c '
  set -euo pipefail
  mount -t tmpfs -o size=1m tmpfs /run
  mkdir -p /run/systemd/journal
  socat -u UNIX-RECV:/run/systemd/journal/socket,mode=666 OPEN:'"$work"'/journal.bin,creat,append &
  for _ in $(seq 50); do [[ -S /run/systemd/journal/socket ]] && break; sleep 0.05; done
  exec 2> '"$work"'/stderr2.txt
  export JOURNAL_STREAM=$(stat -c "%d:%i" '"$work"'/stderr2.txt)
  "'"$daemon"'" --config '"$work"'/node.conf || true
  sleep 0.3
  kill %1 2>/dev/null || true
'
if ! grep -aq 'PRIORITY=3' "$work/journal.bin" || ! grep -aq 'SYSLOG_IDENTIFIER=mpfailoverd' "$work/journal.bin" ||
   ! grep -aq 'MESSAGE=StartupRefused' "$work/journal.bin"; then
  echo "FAIL: the journal did not get the error with its priority:"; cat -v "$work/journal.bin" || true
  exit 1
fi
if grep -q 'error StartupRefused' "$work/stderr2.txt"; then
  echo "FAIL: the log line went to stderr as well as to the journal"; exit 1
fi
echo "journal_log_test: ok"
