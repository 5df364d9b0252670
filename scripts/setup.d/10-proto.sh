#!/usr/bin/env bash
# Generates protobufjs static code (ES module + .d.ts) for every proto/*.proto into proto/gen/,
# when the .proto changed, and copies it next to the compiled TypeScript (dist/proto/gen/) so that
# `import ... from '../../proto/gen/signalling.js'` works both for tsc and at run time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
NODE="${NODE:-node_modules/.bin/node}"
shopt -s nullglob
mkdir -p proto/gen dist/proto/gen
for proto in proto/*.proto; do
  name="$(basename "$proto" .proto)"
  js="proto/gen/$name.js"; dts="proto/gen/$name.d.ts"; stamp="proto/gen/$name.sha256"
  sum="$(cat "$proto" scripts/setup.d/10-proto.sh | sha256sum | cut -c1-32)"
  if [ ! -f "$js" ] || [ ! -f "$dts" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    echo "c4v setup: generating protobuf code for $proto" >&2
    # Each file gets its own protobuf root (--root): with the shared "default" root, the second
    # generated module replaces the first one's `c4v` namespace object and the first one's
    # encoders then fail ("Cannot read properties of undefined (reading 'v1')").
    "$NODE" node_modules/protobufjs-cli/bin/pbjs -t static-module -w es6 --force-number --root "$name" \
      -o "$js" "$proto"
    "$NODE" node_modules/protobufjs-cli/bin/pbts -o "$dts" "$js"
    echo "$sum" > "$stamp"
  fi
  cp "$js" "$dts" dist/proto/gen/
done
