#!/usr/bin/env bash
# Cluster mode (issue 13) and its tests use Debian's redis-server. Installed here when missing, so
# that `npm test` can start a real one on an ephemeral port; nothing is started or enabled as a
# system service. Idempotent: a present redis-server is left alone. Set C4V_SKIP_REDIS=1 to skip
# (the cluster tests then fail with a clear message instead of passing). The openssl CLI comes with
# it: test/cluster-tls.test.ts makes its CA and server certificate with it (Debian 12's
# redis-server is built with TLS; a minimal image has no openssl binary).
set -euo pipefail
log() { echo "c4v setup: $*" >&2; }
PKGS=()
command -v redis-server >/dev/null 2>&1 || PKGS+=(redis-server)
command -v openssl >/dev/null 2>&1 || PKGS+=(openssl)
if [ "${C4V_SKIP_REDIS:-}" = "1" ] || [ "${#PKGS[@]}" = "0" ]; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  log "${PKGS[*]} missing (cluster tests need them): install Debian's ${PKGS[*]} package(s)"
  exit 0
fi
log "installing Debian's ${PKGS[*]} (cluster tests)"
# A lock held by a parallel set-up is waited on (-o DPkg::Lock::Timeout), not failed on.
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${PKGS[@]}" >/dev/null 2>&1 || {
  apt-get -o DPkg::Lock::Timeout=300 update >/dev/null 2>&1
  apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${PKGS[@]}" >/dev/null
}
# Debian's package enables a system service; the tests start their own on ephemeral ports, so a
# service started by the package (where an init system runs at all) is stopped again.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
