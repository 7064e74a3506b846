#!/usr/bin/env bash
# Quick start: a throwaway CFSSL CA on loopback, a worker joined into a temporary root, its status.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
npm run --silent build
exec node --import tsx scripts/demo.ts
