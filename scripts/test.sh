#!/usr/bin/env bash
# The whole test suite: installs what it needs, type-checks, bundles, then runs unit and end-to-end
# tests with Node's test runner against the bundle (or the single binary named by NODE_JOIN_BIN).
# Arguments, if any, are test files to run instead of all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
npx tsc -p tsconfig.json
npm run --silent build
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(find test -name '*.test.ts' | sort)
fi
exec node --import tsx --test --test-reporter=spec "${files[@]}"
