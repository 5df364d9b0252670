#!/usr/bin/env bash
# `npm pack` / `npm publish` run this (package.json "prepack"): builds what the package ships, so
# that a clean checkout packs a complete dist/ (lib, gateway, bin, generated protobuf code) and
# never dist/test or dist/bench (package.json "files" whitelists the rest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NODE=node_modules/.bin/node
[ -x "$NODE" ] || { echo "c4v prepack: node_modules/.bin/node missing; run 'npm ci' first" >&2; exit 1; }
NODE="$NODE" bash scripts/setup.d/10-proto.sh
# Compiled files whose source is gone (a moved or deleted module) must not be shipped.
bash scripts/prune-dist.sh dist/lib dist/gateway dist/bin dist/web dist/client
"$NODE" node_modules/typescript/bin/tsc -p tsconfig.pack.json
# Issue 11: the browser SDK bundle (c4v-media/client) and the web app that `serve` hosts at /.
NODE="$NODE" bash scripts/setup.d/30-web.sh
rm -f dist/client/*.map dist/web/public/*.map
echo "c4v prepack: built dist/lib, dist/gateway, dist/bin" >&2
