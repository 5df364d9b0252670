#!/usr/bin/env bash
# The Debian packages the set-up needs, in one place, and the one function that installs them.
#
#   debian-packages.sh list    [worker] [native]   print the package names
#   debian-packages.sh missing [worker] [native]   print the ones not installed (exit 0)
#   debian-packages.sh install [worker] [native]   install the missing ones (root), else print the
#                                                  apt-get line and exit 1
#
# worker: what native/worker/install.sh needs to build mediasoup-worker; native: what the
# benchmark's optional packet engine (bench/native) needs. Without a group: both.
# scripts/setup.sh runs `install` first of all, before `npm ci` or anything else that compiles.
set -euo pipefail

WORKER_PKGS=(build-essential dpkg-dev pkg-config python3-venv libssl-dev libuv1-dev libsrtp2-dev libabsl-dev
  libflatbuffers-dev flatbuffers-compiler)
NATIVE_PKGS=(build-essential python3 libsrtp2-dev libssl-dev)

log() { echo "c4v packages: $*" >&2; }

action="${1:-list}"
shift || true
[ $# -gt 0 ] || set -- worker native
pkgs=()
for group in "$@"; do
  case "$group" in
    worker) pkgs+=("${WORKER_PKGS[@]}") ;;
    native) pkgs+=("${NATIVE_PKGS[@]}") ;;
    *) log "unknown group '$group' (worker, native)"; exit 2 ;;
  esac
done
# Unique, in first-seen order.
declare -A seen=()
uniq=()
for p in "${pkgs[@]}"; do [ -n "${seen[$p]:-}" ] || { seen[$p]=1; uniq+=("$p"); }; done

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${uniq[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
else
  missing=("${uniq[@]}")
fi

case "$action" in
  list) printf '%s\n' "${uniq[@]}" ;;
  missing) [ ${#missing[@]} -eq 0 ] || printf '%s\n' "${missing[@]}" ;;
  install)
    [ ${#missing[@]} -gt 0 ] || exit 0
    line="apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
      log "these Debian packages are missing: ${missing[*]}"
      log "run as root:  $line"
      exit 1
    fi
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have empty or stale package lists: update once, only when needed.
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
      log "apt-get install failed; updating the package lists and trying again"
      apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    } || { log "apt-get failed; try by hand: apt-get update && $line"; exit 1; }
    ;;
  *) log "usage: debian-packages.sh list|missing|install [worker] [native]"; exit 2 ;;
esac
