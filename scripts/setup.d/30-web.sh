#!/usr/bin/env bash
# Issue 11: bundles the browser SDK (c4v-media/client) and the meeting web app with esbuild into
# dist/client/ and dist/web/public/ (ES modules for current browsers), and copies the app's HTML and CSS.
# esbuild takes well under a second, so this runs every time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
NODE="${NODE:-node_modules/.bin/node}"
mkdir -p dist/client dist/web/public
common=(--bundle --format=esm --platform=browser --target=chrome110,firefox115,safari16 --minify --sourcemap --log-level=warning)
node_modules/.bin/esbuild client/index.ts "${common[@]}" --outfile=dist/client/c4v-client.js
node_modules/.bin/esbuild web/app.ts "${common[@]}" --outfile=dist/web/public/app.js
# Issue 12: the E2EE worker, next to each bundle (the SDK starts it as new URL('./worker.js', import.meta.url)).
node_modules/.bin/esbuild client/e2ee/worker.ts "${common[@]}" --outfile=dist/client/worker.js
cp dist/client/worker.js dist/web/public/worker.js
cp web/static/index.html web/static/app.css dist/web/public/
