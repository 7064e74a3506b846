#!/usr/bin/env bash
# Installs what the demo and the tests need, and only what is missing: Debian packages through
# apt-get (as root), npm packages through npm ci. Fails loudly; never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

want_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || want_pkgs+=("$2"); }
need cfssl golang-cfssl
need cfssljson golang-cfssl
need openssl openssl
need curl curl
need jq jq
need kubectl kubernetes-client
need etcd etcd-server
need etcdctl etcd-client
need systemd-analyze systemd
need xz xz-utils
need gcc gcc                                # test/e2e/hardening.test.ts builds an OpenSSL provider
need systemd-nspawn systemd-container       # and boots a real systemd to run the renewal unit
for extra in ${NODE_JOIN_EXTRA_PKGS:-}; do want_pkgs+=("$extra"); done

if [ "${#want_pkgs[@]}" -gt 0 ]; then
  mapfile -t want_pkgs < <(printf '%s\n' "${want_pkgs[@]}" | sort -u)
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/deps.sh: missing Debian packages ${want_pkgs[*]} and not root: install them with apt-get" >&2
    exit 1
  fi
  echo "scripts/deps.sh: installing ${want_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Package lists on a fresh machine are empty or stale: update once, then install.
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${want_pkgs[@]}" >/dev/null
fi

# promtool validates the metrics textfile. It comes from Debian's prometheus package, unpacked into
# .cache rather than installed: the package would also set up a Prometheus server.
promtool=.cache/prometheus/usr/bin/promtool
if ! command -v promtool >/dev/null 2>&1 && [ ! -x "$promtool" ]; then
  echo "scripts/deps.sh: fetching promtool from Debian's prometheus package" >&2
  mkdir -p .cache/prometheus-deb
  ( cd .cache/prometheus-deb && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download prometheus >/dev/null; }; } )
  dpkg-deb -x .cache/prometheus-deb/prometheus_*.deb .cache/prometheus
  rm -rf .cache/prometheus-deb
  [ -x "$promtool" ] || { echo "scripts/deps.sh: promtool not found in the prometheus package" >&2; exit 1; }
fi

stamp=node_modules/.node-join-lock-stamp
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "scripts/deps.sh: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
