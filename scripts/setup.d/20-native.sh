#!/usr/bin/env bash
# Builds the native packet engine (native/src, binding.gyp) with node-gyp into build/Release/,
# only when its sources changed (stamp in build/). It is an N-API addon (NAPI_VERSION 8, ABI
# stable), so the Node headers npm's node-gyp finds (nodedir) need not match Node 22 exactly.
# Without a C compiler or libsrtp2 the library still works: lib/native/index.ts falls back to
# pure TypeScript (node:dgram), so a failed build is a warning here, not an error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
NODE="${NODE:-node_modules/.bin/node}"
log() { echo "c4v setup: $*" >&2; }

sum="$(cat binding.gyp native/src/* scripts/setup.d/20-native.sh | sha256sum | cut -c1-32)"
stamp=build/.c4v-native.sha256
if [ -f build/Release/c4v_native.node ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then exit 0; fi

# Debian packages the build needs (the worker build step installs them too).
PKGS=(build-essential python3 libsrtp2-dev libssl-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages for the native engine: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } ||
      log "WARNING: apt-get could not install ${missing[*]}"
  else
    log "WARNING: the native engine needs ${missing[*]} (apt-get install as root); using the TypeScript fallback"
    exit 0
  fi
fi

# node-gyp: the copy npm ships (no extra dependency), else one on PATH.
GYP=""
for c in "$(dirname "$(command -v npm 2>/dev/null || echo /usr/bin/npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" \
         /usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js \
         /usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js; do
  if [ -f "$c" ]; then GYP="$c"; break; fi
done
if [ -z "$GYP" ]; then
  log "WARNING: node-gyp not found; the native engine is not built (TypeScript fallback in use)"
  exit 0
fi
nodedir="${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}"
args=(rebuild --release)
if [ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ -f "$nodedir/include/node/node_api.h" ]; then
  args+=(--nodedir="$nodedir")
fi
log "building the native packet engine (node-gyp)"
if "$NODE" "$GYP" "${args[@]}" > build.native.log 2>&1; then
  echo "$sum" > "$stamp"
  rm -f build.native.log
else
  tail -n 30 build.native.log >&2
  log "WARNING: the native engine build failed (log: build.native.log); the TypeScript fallback is used"
fi
