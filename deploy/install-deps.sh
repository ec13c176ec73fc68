#!/usr/bin/env bash
# Installs every build, run and test dependency of mpfailover from Debian 12's repositories.
# Idempotent: packages already present are left alone, and apt-get update runs only when a
# package is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libboost-dev libboost-program-options-dev libboost-system-dev
  libpqxx-dev libpq-dev
  libzmq3-dev cppzmq-dev
  libspdlog-dev libfmt-dev
  nlohmann-json3-dev libzstd-dev libsystemd-dev
  doctest-dev
  postgresql-15 postgresql-client-15 postgresql-server-dev-15
  iproute2 nftables iputils-ping iputils-arping procps psmisc socat bc jq
  clang clang-format
  dpkg-dev mmdebstrap systemd python3  # the .deb (cpack, dpkg-shlibdeps) and its install test
  prometheus man-db python3-yaml  # lint: promtool check/test rules; man -l on the man pages
  libssl-dev                  # the etcd arbiter's https endpoints (Boost.Beast over OpenSSL)
  etcd-server etcd-client     # heartbeat.arbiter = etcd: the arbiter test's single-member etcd
  chromium fonts-dejavu-core  # the status page's browser test (headless) and its screenshots' text
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "hint: run this script as root, or install them with apt-get" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Only promtool is wanted from prometheus: do not leave the server it enables running (on 9090).
if [[ " ${missing[*]} " == *" prometheus "* ]] && [[ -d /run/systemd/system ]]; then
  systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
# The cluster the Debian package creates is not used: tests and the pair make their own.
echo "install-deps: done"
