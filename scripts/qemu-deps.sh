#!/usr/bin/env bash
# Installs what is needed to run the linux/arm64 single executable on an
# x86_64 Debian host (user-mode emulation) and to strip the arm64 binary:
#   qemu-user-static            -> /usr/bin/qemu-aarch64-static
#   libc6-arm64-cross           -> /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1, libc, libm, ...
#   libstdc++6-arm64-cross      -> /usr/aarch64-linux-gnu/lib/libstdc++.so.6, libgcc_s
#   binutils-aarch64-linux-gnu  -> /usr/bin/aarch64-linux-gnu-strip
# Only missing packages are installed (apt-get, needs root or sudo).
# Usage: bash scripts/qemu-deps.sh [--strip-only]
#   --strip-only   install only binutils-aarch64-linux-gnu (what `npm run package` needs)
# Run the arm64 binary with:
#   qemu-aarch64-static -L /usr/aarch64-linux-gnu dist/node-join-linux-arm64 version
set -euo pipefail

want=(binutils-aarch64-linux-gnu)
if [[ "${1:-}" != "--strip-only" ]]; then
  want+=(qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "qemu-deps: installing ${missing[*]}" >&2
SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
    echo "qemu-deps: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# An install can fail on stale package lists (first use of a fresh machine): update once and retry.
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
  "${SUDO[@]}" apt-get update >&2
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

for f in /usr/bin/aarch64-linux-gnu-strip; do
  [[ -x "$f" ]] || { echo "qemu-deps: $f missing after install" >&2; exit 1; }
done
if [[ "${1:-}" != "--strip-only" ]]; then
  for f in /usr/bin/qemu-aarch64-static /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 /usr/aarch64-linux-gnu/lib/libstdc++.so.6; do
    [[ -e "$f" ]] || { echo "qemu-deps: $f missing after install" >&2; exit 1; }
  done
fi
