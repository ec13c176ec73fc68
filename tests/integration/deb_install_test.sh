#!/usr/bin/env bash
# The .deb installs on a clean Debian 12 root and its service starts (issue #7). Run as root.
#
#   1. cpack builds mpfailover_*.deb from MPF_BUILD_DIR (the three product targets are built
#      first if they are stale); its Depends must name the computed libraries and the run-time
#      packages.
#   2. A clean bookworm root made by mmdebstrap from the configured Debian mirror, holding only
#      apt, systemd and the packages the .deb depends on (not the .deb), cached as a tarball
#      (MPF_DEB_TEST_CACHE, default /var/cache/mpfailover-test): the first run downloads
#      (~2 min), later ones unpack it (~15 s). A Depends it lacks is installed by apt-get -f.
#   3. dpkg -i in that root (chroot): maintainer scripts run there. Checked: dpkg -s, every file
#      in place, conffiles, the "mpfailover" system user and /etc/mpfailover's owner and mode,
#      `systemd-analyze verify` of the unit (the root's own systemd).
#   4. The service, started the way systemd starts it, since no systemd runs as PID 1 here: in
#      fresh mount, PID and network namespaces, a throwaway PostgreSQL 15 cluster in the root,
#      a config with CURVE keys, then ExecStartPre (--check) and ExecStart as the "mpfailover"
#      user with exactly the unit's ambient and bounding capabilities (setpriv), the runtime
#      directory made as RuntimeDirectory= would, NOTIFY_SOCKET and WATCHDOG_USEC set. A
#      Unix-datagram listener (python3) must get READY=1, then WATCHDOG=1 pings, then STOPPING=1
#      on SIGTERM, and the daemon must exit 0. Also: the CLI reaches the control socket, and
#      `ip addr add` run as "mpfailover" works with the ambient capabilities and fails without
#      (what the hooks rely on).
#   5. dpkg --purge removes the files and leaves the user (Debian keeps system users).
# Not covered: the unit's sandboxing options (ProtectSystem= and friends) need systemd as PID 1.
#
# Environment: MPF_BUILD_DIR (required), MPF_DEB_TEST_CACHE, MPF_DEB_TEST_MIRROR (default
# http://deb.debian.org/debian), MPF_DEB_TEST_KEEP=1 keeps the work dir on failure.
set -euo pipefail

build=${MPF_BUILD_DIR:?MPF_BUILD_DIR must name the build tree}
build=$(cd "$build" && pwd)
cache=${MPF_DEB_TEST_CACHE:-/var/cache/mpfailover-test}
mirror=${MPF_DEB_TEST_MIRROR:-http://deb.debian.org/debian}
# Security updates too: PostgreSQL's minor releases reach bookworm through them.
sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main"
  "deb ${mirror%/debian}/debian-security bookworm-security main")
self=$(readlink -f "${BASH_SOURCE[0]}")

say() { printf 'deb_install_test: [%3ds] %s\n' "$SECONDS" "$*"; }
fail() {
  printf 'deb_install_test: FAIL: %s\n' "$*" >&2
  exit 1
}

# --- phase 2: runs inside `unshare --mount --pid --net --fork` (below); $1 is the root --------
# Everything it mounts and starts dies with the namespaces, whatever way it exits.
if [[ ${1:-} == --in-namespaces ]]; then
  root=$2
  work=$3
  in_root() { chroot "$root" "$@"; }
  mount --make-rprivate /
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount -t tmpfs tmpfs "$root/run"
  mount -t tmpfs tmpfs "$root/tmp"
  mkdir -p "$root/run/postgresql" "$root/run/lock"
  in_root chown postgres:postgres /run/postgresql
  ip link set lo up
  ip link add mpf0 type veth peer name mpf1  # veth: the dummy module may be missing
  ip addr add 198.18.0.11/24 dev mpf0
  ip link set mpf0 up
  ip link set mpf1 up

  # The hooks' privilege: `ip addr add` as "mpfailover" with the unit's ambient capabilities.
  caps=+net_raw,+net_admin
  as_daemon_user() {
    in_root setpriv --reuid=mpfailover --regid=mpfailover --init-groups \
      --inh-caps=-all,$caps --ambient-caps=-all,$caps --bounding-set=-all,$caps \
      --no-new-privs -- "$@"
  }
  if in_root setpriv --reuid=mpfailover --regid=mpfailover --init-groups \
    --inh-caps=-all --bounding-set=-all --no-new-privs -- \
    ip addr add 198.18.0.10/24 dev mpf0 2>/dev/null; then
    fail "ip addr add worked as mpfailover without capabilities: the check below proves nothing"
  fi
  as_daemon_user ip addr add 198.18.0.10/24 dev mpf0 ||
    fail "ip addr add failed as mpfailover with ambient CAP_NET_ADMIN (the hooks need it)"
  ip -4 addr show dev mpf0 | grep -q 198.18.0.10/24 || fail "198.18.0.10 not on mpf0"
  as_daemon_user arping -q -c 1 -w 1 -U -I mpf0 198.18.0.10 ||
    fail "gratuitous arping failed as mpfailover with ambient CAP_NET_RAW"
  as_daemon_user ip addr del 198.18.0.10/24 dev mpf0 || fail "ip addr del failed as mpfailover"
  echo "phase2: ip addr add/del and arping -U as mpfailover with the ambient capabilities: ok"

  # A throwaway PostgreSQL 15 cluster inside the root; the daemon's role by peer auth. Its
  # search_path leaves out "$user": a role named like the catalog's schema "mpfailover" would
  # otherwise resolve the application's unqualified table names there (init-db refuses that).
  pgdata=/var/lib/mpf-test/pg
  mkdir -p "$root$pgdata"
  in_root chown -R postgres:postgres /var/lib/mpf-test
  in_root runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$pgdata" -A peer \
    -U postgres >"$work/initdb.log" 2>&1 || fail "initdb failed: $(tail -3 "$work/initdb.log")"
  in_root runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$pgdata" -w -t 60 \
    -l /var/lib/mpf-test/pg.log \
    -o "-c listen_addresses='' -k /run/postgresql -c track_commit_timestamp=on" start \
    >/dev/null || fail "PostgreSQL did not start: $(tail -5 "$root/var/lib/mpf-test/pg.log")"
  in_root runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql \
    -c "CREATE ROLE mpfailover LOGIN SUPERUSER" \
    -c "ALTER ROLE mpfailover SET search_path = public" -c "CREATE DATABASE meetingplace OWNER mpfailover"

  # The config an operator would write, with CURVE keys (secret key readable by the daemon only).
  in_root mpfailover keygen --secret-key-file /etc/mpfailover/a.key \
    --public-key-file /etc/mpfailover/a.pub >/dev/null
  in_root mpfailover keygen --secret-key-file /etc/mpfailover/b.key \
    --public-key-file /etc/mpfailover/b.pub >/dev/null
  in_root chown mpfailover:mpfailover /etc/mpfailover/a.key
  cat >"$root/etc/mpfailover/mpfailover.conf" <<'CONF'
[node]
name = a
database = host=/run/postgresql dbname=meetingplace user=mpfailover
initial_role = active
[peer]
name = b
address = 198.18.0.12
[replication]
listen = 198.18.0.11
[heartbeat]
interval = 1s
timeout = 300ms
ping_timeout = 300ms
[security]
mode = curve
secret_key_file = /etc/mpfailover/a.key
public_key_file = /etc/mpfailover/a.pub
peer_public_key_file = /etc/mpfailover/b.pub
CONF
  in_root chmod 0640 /etc/mpfailover/mpfailover.conf
  in_root chgrp mpfailover /etc/mpfailover/mpfailover.conf
  as_daemon_user mpfailover init-db --app-schema >"$work/init-db.log" 2>&1 ||
    fail "mpfailover init-db failed: $(tail -5 "$work/init-db.log")"

  # What systemd does for the unit: RuntimeDirectory=, the notify socket, the watchdog.
  unit=$root/lib/systemd/system/mpfailoverd.service
  exec_start_pre=$(sed -n 's/^ExecStartPre=//p' "$unit")
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  grep -qx 'AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN' "$unit" || fail "unit's caps changed"
  install -d -o "$(in_root id -u mpfailover)" -g "$(in_root id -g mpfailover)" -m 0755 \
    "$root/run/mpfailover"
  # shellcheck disable=SC2086  # the unit's command lines are split on spaces, as systemd does
  as_daemon_user $exec_start_pre >"$work/check.log" 2>&1 ||
    fail "ExecStartPre ($exec_start_pre) failed: $(cat "$work/check.log")"
  echo "phase2: ExecStartPre: $(cat "$work/check.log")"

  python3 - "$root/run/notify.sock" "$work/notify.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        for line in s.recv(4096).decode().splitlines():
            out.write(line + "\n")
PY
  listener=$!
  for _ in $(seq 50); do [[ -S $root/run/notify.sock ]] && break; sleep 0.1; done
  [[ -S $root/run/notify.sock ]] || fail "the notify listener did not bind"
  chmod 0666 "$root/run/notify.sock"

  # shellcheck disable=SC2086
  # exec: $! must be the daemon itself (chroot and setpriv exec too), not a subshell that a
  # SIGTERM would end while the daemon ran on.
  # shellcheck disable=SC2086
  (NOTIFY_SOCKET=/run/notify.sock WATCHDOG_USEC=2000000 exec chroot "$root" setpriv \
    --reuid=mpfailover --regid=mpfailover --init-groups --inh-caps=-all,$caps \
    --ambient-caps=-all,$caps --bounding-set=-all,$caps --no-new-privs -- $exec_start \
    >"$work/daemon.log" 2>&1) &
  daemon=$!
  wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll under a deadline
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@"; do
      kill -0 "$daemon" 2>/dev/null || fail "mpfailoverd exited while waiting for $what: $(tail -5 "$work/daemon.log")"
      ((SECONDS < deadline)) || fail "no $what after ${deadline}s: $(tail -5 "$work/daemon.log")"
      sleep 0.2
    done
  }
  wait_for 60 "READY=1" grep -qx READY=1 "$work/notify.log"
  echo "phase2: READY=1 after start; $(grep -m1 '^STATUS=' "$work/notify.log")"
  # The periodic STATUS= (what `systemctl status` shows) leads with the role and epoch.
  wait_for 10 "a STATUS= line with the role" \
    grep -Eq '^STATUS=node [^:]+: (starting|standby|promoting|active) \(epoch [0-9]+\), peer ' \
    "$work/notify.log"
  pings() { [[ $(grep -cx WATCHDOG=1 "$work/notify.log") -ge $1 ]]; }
  wait_for 10 "two WATCHDOG=1 pings" pings 2
  sock=$root/run/mpfailover/mpfailover.sock
  [[ -S $sock ]] || fail "no control socket $sock"
  [[ $(chroot "$root" stat -c %U /run/mpfailover/mpfailover.sock) == mpfailover ]] || fail "control socket not owned by mpfailover"
  # Exit 3: answered, the pair unhealthy (no peer here: docs/cli-exit-codes.md).
  rc=0
  in_root mpfailover status >"$work/status.log" 2>&1 || rc=$?
  ((rc == 0 || rc == 3)) || fail "mpfailover status failed (exit $rc): $(cat "$work/status.log")"
  grep -q "^node a: active" "$work/status.log" || fail "mpfailover status: $(cat "$work/status.log")"
  echo "phase2: mpfailover status: $(head -1 "$work/status.log")"
  kill -TERM "$daemon"
  deadline=$((SECONDS + 30))
  while kill -0 "$daemon" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  kill -0 "$daemon" 2>/dev/null && fail "mpfailoverd still running 30 s after SIGTERM"
  rc=0
  wait "$daemon" || rc=$?
  ((rc == 0)) || fail "mpfailoverd exited $rc on SIGTERM: $(tail -5 "$work/daemon.log")"
  grep -qx STOPPING=1 "$work/notify.log" || fail "no STOPPING=1 on SIGTERM"
  kill "$listener" 2>/dev/null || true
  in_root runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$pgdata" -m immediate \
    stop >/dev/null 2>&1 || true
  echo "phase2: notify messages: $(sort "$work/notify.log" | sed 's/=.*//' | uniq -c | xargs)"
  exit 0
fi

# --- phase 1 -----------------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || fail "run as root (chroot, namespaces, dpkg)"
for tool in cpack dpkg-deb mmdebstrap unshare chroot setpriv python3 ip; do
  command -v "$tool" >/dev/null || fail "\"$tool\" not found (deploy/install-deps.sh installs it)"
done

work=$(mktemp -d /tmp/mpf-debtest.XXXXXX)
root=$work/root
cleanup() {
  local rc=$?
  # Mounts and processes live in phase 2's namespaces and are gone; only files remain.
  if ((rc != 0)) && [[ ${MPF_DEB_TEST_KEEP:-} == 1 ]]; then
    echo "deb_install_test: kept $work" >&2
  else
    rm -rf --one-file-system "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building the product targets and the .deb (cpack)"
timeout 900 cmake --build "$build" --target mpfailoverd mpfailover mpfailover_capture \
  >"$work/build.log" 2>&1 || fail "build failed: $(tail -20 "$work/build.log")"
(cd "$work" && timeout 300 cpack --config "$build/CPackConfig.cmake" -B "$work/pkg") \
  >"$work/cpack.log" 2>&1 || fail "cpack failed: $(tail -20 "$work/cpack.log")"
debs=("$work"/pkg/mpfailover_*.deb)
[[ -f ${debs[0]} && ${#debs[@]} -eq 1 ]] || fail "expected one mpfailover_*.deb in $work/pkg"
deb=${debs[0]}
depends=$(dpkg-deb -f "$deb" Depends)
say "built $(basename "$deb"); Depends: $depends"
for d in postgresql-15 iproute2 iputils-arping adduser libzmq5 libpqxx libsystemd0; do
  [[ $depends == *"$d"* ]] || fail "Depends lacks $d"
done

# The clean root: apt, systemd (for systemd-analyze) and what the package needs on bookworm,
# but not the package. A Depends this list lacks (a new library) is fetched by apt below.
base=postgresql-15,iproute2,iputils-arping,iputils-ping,adduser,libpqxx-6.4,libzmq5
base+=,libspdlog1.10,libzstd1,libsystemd0,libboost-program-options1.74.0,systemd,python3-minimal,procps
mkdir -p "$cache"
tarball=$cache/bookworm-$(md5sum <<<"$base ${sources[*]}" | cut -c1-12).tar
if [[ ! -f $tarball ]]; then
  say "making a clean bookworm root with mmdebstrap (once; cached as $tarball)"
  timeout 480 mmdebstrap --quiet --format=tar --variant=apt --mode=root --include="$base" bookworm \
    "$tarball.part" "${sources[@]}" >"$work/mmdebstrap.log" 2>&1 ||
    { rm -f "$tarball.part"; fail "mmdebstrap failed: $(tail -10 "$work/mmdebstrap.log")"; }
  mv "$tarball.part" "$tarball"
fi
mkdir "$root"
tar -xf "$tarball" -C "$root"
dpkg-query --admindir="$root/var/lib/dpkg" -W mpfailover >/dev/null 2>&1 &&
  fail "the clean root already has mpfailover"
say "clean root unpacked"

cp "$deb" "$root/tmp/mpfailover.deb"
if ! chroot "$root" dpkg -i /tmp/mpfailover.deb >"$work/dpkg.log" 2>&1; then
  grep -q "dependency problems" "$work/dpkg.log" ||
    fail "dpkg -i in the clean root failed: $(tail -10 "$work/dpkg.log")"
  say "dpkg -i: Depends not in the cached root; apt-get -f install from the mirror"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  { chroot "$root" apt-get update -qq && chroot "$root" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq -f --no-install-recommends; } >>"$work/dpkg.log" 2>&1 ||
    fail "apt-get -f install in the clean root failed: $(tail -10 "$work/dpkg.log")"
fi
rm "$root/tmp/mpfailover.deb"
status=$(chroot "$root" dpkg-query -W -f='${Status}' mpfailover)
[[ $status == "install ok installed" ]] || fail "dpkg -s mpfailover: $status"
chroot "$root" dpkg -s mpfailover >/dev/null
say "dpkg -i ok: $status"

pkglib=/usr/lib/postgresql/15/lib
for f in /usr/bin/mpfailoverd /usr/bin/mpfailover $pkglib/mpfailover_capture.so \
  /lib/systemd/system/mpfailoverd.service /etc/mpfailover/mpfailover.conf.example \
  /etc/mpfailover/mpfailover.nft /usr/share/doc/mpfailover/mpfailover.conf.example \
  /usr/share/mpfailover/schema/migrations/0001_catalog.sql \
  /usr/share/man/man1/mpfailover.1.gz /usr/share/man/man8/mpfailoverd.8.gz \
  /usr/share/mpfailover/monitoring/mpfailover-rules.yml \
  /usr/share/mpfailover/monitoring/mpfailover.json /usr/share/doc/mpfailover/docs/install.md; do
  [[ -e $root$f ]] || fail "$f not installed"
done
for f in /usr/bin/mpfailoverd /usr/bin/mpfailover; do [[ -x $root$f ]] || fail "$f not executable"; done
for f in on_promote on_demote; do
  [[ -x $root/usr/lib/mpfailover/hooks/$f ]] || fail "hook $f not installed"
done
[[ -e $root/usr/share/bash-completion/completions/mpfailover ]] || fail "bash completion not installed"
conffiles=$(chroot "$root" dpkg-query -W -f='${Conffiles}' mpfailover)
[[ $conffiles == *"/etc/mpfailover/mpfailover.conf.example"* ]] || fail "conffiles: $conffiles"
chroot "$root" getent passwd mpfailover >/dev/null || fail "postinst did not create user mpfailover"
chroot "$root" getent group mpfailover >/dev/null || fail "postinst did not create group mpfailover"
[[ $(chroot "$root" stat -c "%U:%G %a" /etc/mpfailover) == "root:mpfailover 750" ]] ||
  fail "/etc/mpfailover is $(chroot "$root" stat -c "%U:%G %a" /etc/mpfailover), want root:mpfailover 750"
say "files, conffiles, user and group in place"

# systemd-analyze of the root's own systemd; it needs /proc, so in a private mount namespace.
unshare --mount --fork bash -c "mount --make-rprivate / && mount -t proc proc '$root/proc' &&
  chroot '$root' systemd-analyze verify --man=no /lib/systemd/system/mpfailoverd.service" \
  >"$work/verify.log" 2>&1 || fail "systemd-analyze verify: $(cat "$work/verify.log")"
[[ ! -s $work/verify.log ]] || fail "systemd-analyze verify warned: $(cat "$work/verify.log")"
say "systemd-analyze verify: clean"

say "starting the service as systemd would (namespaces, setpriv, NOTIFY_SOCKET)"
timeout 240 unshare --mount --pid --net --fork --kill-child "$self" --in-namespaces "$root" "$work" ||
  fail "the service did not start and stop cleanly (see above)"

chroot "$root" dpkg --purge mpfailover >"$work/purge.log" 2>&1 ||
  fail "dpkg --purge failed: $(tail -5 "$work/purge.log")"
[[ ! -e $root/usr/bin/mpfailoverd && ! -e $root$pkglib/mpfailover_capture.so ]] ||
  fail "files left after purge"
say "dpkg --purge ok"
say "PASS"
