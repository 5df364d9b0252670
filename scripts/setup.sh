#!/usr/bin/env bash
# The whole set-up, idempotent and cached: Node dependencies (which bring Node >= 22), the offline
# mediasoup-worker build, the native packet engine, generated protobuf code and the TypeScript build.
# `npm start`, `npm test` and `npm run bench` call it first; each step is skipped when up to date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "c4v setup: $*" >&2; }

# 1. Node dependencies, re-installed only when package-lock.json changed. The stamp lives inside
#    node_modules so that deleting node_modules also forgets it.
lock_hash="$(sha256sum package-lock.json | cut -c1-32)"
if [ ! -f node_modules/.c4v-lock-hash ] || [ "$(cat node_modules/.c4v-lock-hash)" != "$lock_hash" ]; then
  log "installing Node dependencies (npm ci)"
  # npm itself may run on the machine's older Node; the engines warnings are about that Node, not
  # about the Node 22 that this install brings (node_modules/.bin/node) and that everything runs on.
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.c4v-lock-hash
fi
NODE="$ROOT/node_modules/.bin/node"
"$NODE" -e 'if (+process.versions.node.split(".")[0] < 22) { console.error("c4v setup: node_modules/.bin/node is " + process.version + ", need >= 22"); process.exit(1); }'

# 2. mediasoup-worker, built from the npm package's sources against Debian libraries (cached).
bash native/worker/install.sh >/dev/null

# 3. Further generated and native parts (hooks for later steps).
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  NODE="$NODE" bash "$step"
done

# 4. TypeScript (incremental: a no-op build takes about a second).
"$NODE" node_modules/typescript/bin/tsc -p tsconfig.json --incremental --tsBuildInfoFile dist/.tsbuildinfo
