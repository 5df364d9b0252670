#!/usr/bin/env bash
# Removes compiled files (.js, .d.ts, .map) under the given dist/ folders whose TypeScript source is
# gone (a moved or deleted module), so that neither the test runner (every dist/test/**/*.test.js)
# nor `npm pack` picks up a stale one. Run from the repository root: scripts/prune-dist.sh DIR...
set -euo pipefail
for dir in "$@"; do
  [ -d "$dir" ] || continue
  find "$dir" -type f \( -name '*.js' -o -name '*.d.ts' -o -name '*.map' \) -print0 |
    while IFS= read -r -d '' f; do
      src="${f#dist/}"; src="${src%.map}"; src="${src%.js}"; src="${src%.d.ts}"
      [ -f "$src.ts" ] || rm -f "$f"
    done
done
