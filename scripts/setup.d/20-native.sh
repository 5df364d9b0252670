#!/usr/bin/env bash
# Builds the benchmark's optional native packet engine (bench/native: binding.gyp, src/) with
# node-gyp into bench/native/build/Release/, only when its sources changed (stamp in that build/).
# It is an N-API addon (NAPI_VERSION 8, ABI stable), so the Node headers npm's node-gyp finds
# (nodedir) need not match Node 22 exactly. It is not part of the library: without a C compiler or
# libsrtp2 the benchmark falls back to pure TypeScript (node:dgram), so a failed build is a
# warning here, not an error. The Debian packages were installed by scripts/setup.sh beforehand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
NODE="${NODE:-node_modules/.bin/node}"
log() { echo "c4v setup: $*" >&2; }
DIR=bench/native

sum="$(cat "$DIR/binding.gyp" "$DIR"/src/* scripts/setup.d/20-native.sh | sha256sum | cut -c1-32)"
stamp="$DIR/build/.c4v-native.sha256"
if [ -f "$DIR/build/Release/c4v_native.node" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then exit 0; fi

if ! bash native/worker/debian-packages.sh install native 2>/dev/null; then
  log "WARNING: the native engine needs $(bash native/worker/debian-packages.sh missing native | tr '\n' ' ')(apt-get install as root); the benchmark uses the TypeScript fallback"
  exit 0
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
args=(rebuild --release --directory="$DIR")
if [ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ -f "$nodedir/include/node/node_api.h" ]; then
  args+=(--nodedir="$nodedir")
fi
log "native engine: building bench/native (node-gyp)"
# One line per compile and link step (make's "CC(target) ..." lines), the rest into the log.
if "$NODE" "$GYP" "${args[@]}" 2>&1 | tee build.native.log | while IFS= read -r line; do
  case "$line" in
    *"CC(target)"*|*"CXX(target)"*|*"SOLINK_MODULE(target)"*) step="${line#"${line%%[![:space:]]*}"}"; log "native engine: ${step%% *} ${step##*/}" ;;
  esac
done; then
  echo "$sum" > "$stamp"
  rm -f build.native.log
else
  tail -n 30 build.native.log >&2
  log "WARNING: the native engine build failed (log: build.native.log); the TypeScript fallback is used"
fi
