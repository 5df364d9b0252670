#!/usr/bin/env bash
# The whole set-up, idempotent and cached: Debian packages, Node dependencies (which bring Node >= 22), the offline
# mediasoup-worker build, the native packet engine, generated protobuf code and the TypeScript build.
# `npm start`, `npm test` and `npm run bench` call it first; each step is skipped when up to date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "c4v setup: $*" >&2; }

# 0. Debian packages first, before anything that compiles (a fresh Debian 12 machine has none of
#    the -dev packages). When they cannot be installed (not root), the steps that need them say so:
#    the worker build stops with the apt-get line, the optional native engine falls back.
if [ -n "$(bash native/worker/debian-packages.sh missing worker native)" ]; then
  log "[1/5] Debian packages"
  bash native/worker/debian-packages.sh install worker native ||
    log "WARNING: continuing without them; a step that needs them stops or falls back below"
fi

# 1. Node dependencies, re-installed only when package-lock.json changed. The stamp lives inside
#    node_modules so that deleting node_modules also forgets it.
lock_hash="$(sha256sum package-lock.json | cut -c1-32)"
if [ ! -f node_modules/.c4v-lock-hash ] || [ "$(cat node_modules/.c4v-lock-hash)" != "$lock_hash" ]; then
  log "[2/5] installing Node dependencies (npm ci)"
  # npm itself may run on the machine's older Node; the engines warnings are about that Node, not
  # about the Node 22 that this install brings (node_modules/.bin/node) and that everything runs on.
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.c4v-lock-hash
fi
NODE="$ROOT/node_modules/.bin/node"
"$NODE" -e 'if (+process.versions.node.split(".")[0] < 22) { console.error("c4v setup: node_modules/.bin/node is " + process.version + ", need >= 22"); process.exit(1); }'

# 2. mediasoup-worker, built from the npm package's sources against Debian libraries (cached;
#    progress on stderr, the path on stdout).
[ -x "$(bash native/worker/install.sh --path)" ] || log "[3/5] mediasoup-worker (cold build, about 5 minutes)"
bash native/worker/install.sh >/dev/null

# 3. Further generated and native parts (protobuf code, the benchmark's native engine).
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  NODE="$NODE" bash "$step"
done

# 4. TypeScript (incremental: a no-op build takes about a second). Compiled files whose source is
#    gone (a moved or deleted module) are removed first: the test runner runs every
#    dist/test/**/*.test.js, so a stale one would keep running after its source was deleted.
bash scripts/prune-dist.sh dist/lib dist/gateway dist/bin dist/bench dist/test
[ -f dist/.tsbuildinfo ] || log "[5/5] TypeScript build (tsc)"
"$NODE" node_modules/typescript/bin/tsc -p tsconfig.json --incremental --tsBuildInfoFile dist/.tsbuildinfo
