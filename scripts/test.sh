#!/usr/bin/env bash
# The whole test suite: installs what it needs, type-checks, checks the formatting and lints (import
# cycles, layer direction), bundles, runs the unit and end-to-end tests with Node's test runner
# against the bundle (the packaging tests build the single binaries and .deb files on the way), then
# runs the end-to-end suite again against the x64 single binary. The fast tier alone, without root
# or apt: npm run test:unit.
# Arguments, if any, are test files to run (against the bundle, or the binary named by NODE_JOIN_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
npm run --silent check
npm run --silent build
run() { node --import tsx --test --test-reporter=spec "$@"; }
if [ "$#" -gt 0 ]; then
  run "$@"
  exit
fi
mapfile -t all < <(find test -name '*.test.ts' | sort)
echo "== unit and end-to-end tests against the bundle (dist/node-join.cjs)"
run "${all[@]}"
# The packaging tests above built dist/node-join-linux-x64 from this bundle.
mapfile -t e2e < <(find test/e2e -name '*.test.ts' ! -name 'package.test.ts' ! -name 'deb.test.ts' ! -name 'binary.test.ts' ! -name 'stepca-harness.test.ts' | sort)
echo "== end-to-end tests against the x64 single binary (dist/node-join-linux-x64)"
NODE_JOIN_BIN="$PWD/dist/node-join-linux-x64" run "${e2e[@]}"
