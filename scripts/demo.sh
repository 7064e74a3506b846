#!/usr/bin/env bash
# Quick start: a throwaway CFSSL CA on loopback, a worker joined into a temporary root, its status.
# Installs only what the demo uses (NODE_JOIN_DEPS=demo). Everything it makes, the CA's private key
# included, goes under one directory that is removed on exit, however the demo ends;
# NODE_JOIN_DEMO_KEEP=1 keeps it and says where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_JOIN_DEPS=demo bash scripts/deps.sh
npm run --silent build >/dev/null
demo_dir=$(mktemp -d "${TMPDIR:-/tmp}/node-join-demo.XXXXXX")
cleanup() {
  if [ -n "${NODE_JOIN_DEMO_KEEP:-}" ]; then
    echo "# kept $demo_dir: the demo CA (its private key included) and the joined root; rm -rf it when done"
  else
    rm -rf "$demo_dir"
    echo "# removed $demo_dir: the demo CA (its private key included) and the joined root"
  fi
}
trap cleanup EXIT
# scripts/lib/cfssl.ts and scripts/demo.ts make their directories under $TMPDIR.
TMPDIR=$demo_dir node --import tsx scripts/demo.ts
