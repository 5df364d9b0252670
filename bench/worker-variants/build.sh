#!/usr/bin/env bash
# Builds a variant of the offline mediasoup-worker OUTSIDE the shared cache, for the side-by-side
# comparison `node dist/bench/run.js --only build --worker-bin current=... --worker-bin VARIANT=...`
# (issue 14). The variant is native/worker/recipe/ copied to a temporary folder and changed there:
#
#   absl      ankerl::unordered_dense mapped to absl::flat_hash_map/set (unordered_dense-absl.h)
#             instead of std::unordered_map/set
#   absl-lto  the same, plus meson b_lto (2 LTO threads) and -fno-plt (safe on generic x86-64)
#
# Usage: bench/worker-variants/build.sh VARIANT OUT_DIR     (OUT_DIR/mediasoup-worker, build.log)
# Needs what native/worker/install.sh set up: node_modules/mediasoup, the cached build venv and
# Debian's libsrtp2 source in the cache (run `bash scripts/setup.sh` once first). About 10 minutes
# on 2 cores.
set -euo pipefail
VARIANT="${1:?usage: build.sh absl|absl-lto OUT_DIR}"
OUT="$(mkdir -p "${2:?usage: build.sh absl|absl-lto OUT_DIR}" && cd "$2" && pwd)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${C4V_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/c4v-media}"
case "$VARIANT" in absl | absl-lto) ;; *) echo "unknown variant $VARIANT (absl, absl-lto)" >&2; exit 2 ;; esac
SRTP_VERSION="$(tr -d '[:space:]' < "$ROOT/native/worker/recipe/libsrtp2-debian-version")"
export C4V_LIBSRTP_SRC="$CACHE/src/libsrtp2_$SRTP_VERSION/source"
[ -f "$C4V_LIBSRTP_SRC/.c4v-complete" ] || { echo "no libsrtp2 source in $C4V_LIBSRTP_SRC: run bash scripts/setup.sh first" >&2; exit 1; }
export PATH="$CACHE/build-venv/bin:$PATH"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp -a "$ROOT/native/worker/recipe" "$WORK/recipe"
cp "$HERE/unordered_dense-absl.h" "$WORK/recipe/shims/unordered_dense.h"
# The shim's pkg-config file must pull in Abseil's tables and hash.
sed -i 's|^Cflags: -I$PWD/c4v-shim/include|Requires: absl_flat_hash_map absl_flat_hash_set absl_hash\nCflags: -I$PWD/c4v-shim/include|' "$WORK/recipe/build.sh"
grep -q '^Requires: absl_flat_hash_map' "$WORK/recipe/build.sh"
if [ "$VARIANT" = absl-lto ]; then
  sed -i 's|-Db_ndebug=true$|-Db_ndebug=true -Db_lto=true -Db_lto_threads=2 -Dc_args=-fno-plt -Dcpp_args=-fno-plt|' "$WORK/recipe/build.sh"
  grep -q 'b_lto=true' "$WORK/recipe/build.sh"
fi
cp -a "$ROOT/node_modules/mediasoup/worker" "$WORK/worker"
rm -rf "$WORK/worker/out" "$WORK/worker/prebuild"
t0=$(date +%s)
bash "$WORK/recipe/build.sh" "$WORK/worker" > "$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log" >&2; exit 1; }
install -m 0755 "$WORK/worker/out/Release/mediasoup-worker" "$OUT/mediasoup-worker"
echo "built $VARIANT in $(( $(date +%s) - t0 )) s: $OUT/mediasoup-worker" | tee -a "$OUT/build.log"
