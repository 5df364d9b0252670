#!/usr/bin/env bash
# Issue 11: Debian's Chromium for the browser tests and the browser join-time bench, installed
# when missing (apt, as root). Without root or without the package archive the set-up goes on:
# the browser tests then say that Chromium is missing and fail.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
[ "${C4V_SKIP_CHROMIUM:-}" = "1" ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "c4v setup: chromium missing and cannot be installed here (need root and apt); browser tests will fail" >&2
  exit 0
fi
echo "c4v setup: installing Debian's chromium (browser tests)" >&2
# apt-get update only when the package is unknown (a fresh container has no lists).
apt-cache show chromium >/dev/null 2>&1 || apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
