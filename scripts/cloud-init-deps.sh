#!/usr/bin/env bash
# Installs what the integration tests need, when missing: Debian's cloud-init (`cloud-init schema`
# validates the user-data) and busybox (the PXE hook is also run with busybox's sh and applets, as
# in Debian's installer). As root through apt-get; fails loudly, never skips.
set -euo pipefail
want=()
command -v cloud-init >/dev/null 2>&1 || want+=(cloud-init)
command -v busybox >/dev/null 2>&1 || want+=(busybox)
[ "${#want[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "scripts/cloud-init-deps.sh: missing Debian packages ${want[*]} and not root: install them with apt-get" >&2
  exit 1
fi
echo "scripts/cloud-init-deps.sh: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Only the commands are wanted: no recommends.
if ! apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null 2>&1; then
  # Package lists on a fresh machine are empty or stale: update once, then install (errors shown).
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
fi
for cmd in cloud-init busybox; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "scripts/cloud-init-deps.sh: $cmd still not found after installing ${want[*]}" >&2; exit 1; }
done
