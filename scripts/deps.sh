#!/usr/bin/env bash
# Installs what the demo and the tests need, and only what is missing: Debian packages through
# apt-get (as root), npm packages through npm ci. Fails loudly; never skips. Quiet when all goes
# well: the output of apt-get and npm is shown only when they fail.
# NODE_JOIN_DEPS=demo installs only what `npm run demo` uses (scripts/demo.sh); the default, test,
# everything the test suite uses.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${NODE_JOIN_DEPS:-test}
case "$mode" in
  demo | test) ;;
  *)
    echo "scripts/deps.sh: NODE_JOIN_DEPS must be demo or test (got \"$mode\")" >&2
    exit 2
    ;;
esac

want_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || want_pkgs+=("$2"); }
# The demo: a CFSSL CA (scripts/lib/cfssl.ts makes it with openssl and polls it with curl).
need cfssl golang-cfssl
need cfssljson golang-cfssl
need openssl openssl
need curl curl
if [ "$mode" = test ]; then
  need jq jq
  need kubectl kubernetes-client
  need etcd etcd-server
  need etcdctl etcd-client
  need systemd-analyze systemd
  need xz xz-utils
  need gcc gcc                                # test/e2e/hardening.test.ts builds an OpenSSL provider
  need systemd-nspawn systemd-container       # and boots a real systemd to run the renewal unit
  need zsh zsh                                # test/unit/completion.test.ts runs both completions
  need groff groff-base                       # and checks the man page
  need objdump binutils                       # test/e2e/deb.test.ts: the binaries' glibc minimum
  need tinyproxy tinyproxy                    # test/e2e/proxy.test.ts: a real proxy on loopback
  need nginx nginx-light                      # test/helpers/tls-proxy.ts: a TLS-terminating proxy
  need sqlite3 sqlite3                        # test/e2e/revoke.test.ts: CFSSL's certificate database
  need python3 python3-minimal               # test/e2e/probe.test.ts: a web server that is not a CA
  need faketime faketime                      # test/e2e/clock.test.ts: the host clock at 1970, days behind, years ahead
  need swtpm swtpm                            # test/helpers/swtpm.ts: a software TPM 2.0 per test machine
  need swtpm_setup swtpm-tools
  need tpm2_createprimary tpm2-tools          # agent/tpm runs tpm2-tools against it (its TSS
                                              # depends on libtss2-tcti-swtpm0, the swtpm: TCTI)
fi
for extra in ${NODE_JOIN_EXTRA_PKGS:-}; do want_pkgs+=("$extra"); done

# Runs a command with its output in a log that is shown only when it fails.
quietly() {
  local log status=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    echo "scripts/deps.sh: $* failed (exit $status):" >&2
    cat "$log" >&2
  fi
  rm -f "$log"
  return "$status"
}

if [ "${#want_pkgs[@]}" -gt 0 ]; then
  mapfile -t want_pkgs < <(printf '%s\n' "${want_pkgs[@]}" | sort -u)
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/deps.sh: missing Debian packages ${want_pkgs[*]} and not root: install them with apt-get" >&2
    exit 1
  fi
  echo "scripts/deps.sh: installing ${want_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Package lists on a fresh machine are empty or stale: update once, then install.
  quietly apt-get update -qq
  # Daemons in these packages (nginx, tinyproxy) are for the tests, which start their own on
  # loopback: a policy-rc.d that answers 101 (invoke-rc.d's "action forbidden", Debian policy
  # 9.3.3.1) keeps the packages from starting them, unless the host has a policy of its own.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    own_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$own_policy"
    chmod 755 "$own_policy"
  fi
  status=0
  quietly apt-get install -y -qq --no-install-recommends "${want_pkgs[@]}" || status=$?
  [ -z "$own_policy" ] || rm -f "$own_policy"
  [ "$status" = 0 ] || exit "$status"
  # Nor left enabled for the next boot, nor running where a host policy let them start.
  now=()
  [ ! -d /run/systemd/system ] || now=(--now)
  for pkg in "${want_pkgs[@]}"; do
    case "$pkg" in
      nginx-light) unit=nginx ;;
      tinyproxy) unit=tinyproxy ;;
      *) continue ;;
    esac
    # best effort: a host without systemctl, or with the unit masked, still runs the tests
    systemctl disable "${now[@]}" "$unit.service" >/dev/null 2>&1 || true
  done
fi

# promtool validates the metrics textfile. It comes from Debian's prometheus package, unpacked into
# .cache rather than installed: the package would also set up a Prometheus server.
promtool=.cache/prometheus/usr/bin/promtool
if [ "$mode" = test ] && ! command -v promtool >/dev/null 2>&1 && [ ! -x "$promtool" ]; then
  echo "scripts/deps.sh: fetching promtool from Debian's prometheus package" >&2
  mkdir -p .cache/prometheus-deb
  ( cd .cache/prometheus-deb && { apt-get download prometheus >/dev/null 2>&1 || { quietly apt-get update -qq && quietly apt-get download prometheus; }; } )
  dpkg-deb -x .cache/prometheus-deb/prometheus_*.deb .cache/prometheus
  rm -rf .cache/prometheus-deb
  [ -x "$promtool" ] || { echo "scripts/deps.sh: promtool not found in the prometheus package" >&2; exit 1; }
fi

stamp=node_modules/.node-join-lock-stamp
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "scripts/deps.sh: npm ci" >&2
  quietly npm ci --silent --no-audit --no-fund
  cp package-lock.json "$stamp"
fi
