#!/usr/bin/env bash
# Builds the real step-ca test harness binaries (test/stepca/{stepca,stepinit})
# from Debian's golang-github-smallstep-certificates-dev (0.19.0) in GOPATH
# mode, into .cache/stepca/bin/. Rebuilds only when the Go sources, this
# script, the Go toolchain or the Debian Go packages changed.
#
# stdout: two lines, "step-ca=<abs path>" and "stepinit=<abs path>".
# stderr: progress and errors. Exit status non-zero on any failure: this
# script never skips.
#
# Environment: STEPCA_CACHE_DIR (default <repo>/.cache/stepca).
set -euo pipefail

die() {
	echo "stepca-build: ERROR: $*" >&2
	exit 1
}
log() { echo "stepca-build: $*" >&2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
SRC="$ROOT/test/stepca"
CACHE="${STEPCA_CACHE_DIR:-$ROOT/.cache/stepca}"
BIN="$CACHE/bin"
GOCODE=/usr/share/gocode
PKGS=(golang-go golang-github-smallstep-certificates-dev gcc libc6-dev)

[ -f "$SRC/stepca/main.go" ] || die "missing $SRC/stepca/main.go"
[ -f "$SRC/stepinit/main.go" ] || die "missing $SRC/stepinit/main.go"

# --- Debian packages ---------------------------------------------------------
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing missing Debian packages: ${missing[*]}"
	SUDO=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || die "packages missing (${missing[*]}) and not root, no sudo: install them with apt-get"
		SUDO=(sudo -n)
	fi
	need_update=0
	for p in "${missing[@]}"; do
		cand="$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')"
		if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then need_update=1; fi
	done
	apt_install() { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
	if [ "$need_update" = 1 ]; then
		log "apt-cache shows no candidate for some package: running apt-get update"
		"${SUDO[@]}" apt-get update >&2 || die "apt-get update failed"
		apt_install || die "apt-get install ${missing[*]} failed"
	elif ! apt_install; then
		log "apt-get install failed: running apt-get update and retrying"
		"${SUDO[@]}" apt-get update >&2 || die "apt-get update failed"
		apt_install || die "apt-get install ${missing[*]} failed"
	fi
	for p in "${PKGS[@]}"; do installed "$p" || die "package $p is still not installed"; done
fi

GO="$(command -v go || true)"
[ -n "$GO" ] || GO=/usr/lib/go/bin/go
[ -x "$GO" ] || die "no go binary (package golang-go)"
[ -d "$GOCODE/src/github.com/smallstep/certificates/ca" ] || die "$GOCODE/src/github.com/smallstep/certificates missing (golang-github-smallstep-certificates-dev)"
[ -d "$GOCODE/src/go.step.sm/crypto/jose" ] || die "$GOCODE/src/go.step.sm/crypto missing (golang-step-crypto-dev)"

# --- cache key -----------------------------------------------------------------
mkdir -p "$BIN"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"

hash="$(
	{
		cd "$SRC" && find . -type f -name '*.go' | LC_ALL=C sort | xargs sha256sum
		sha256sum "$SELF" | cut -d' ' -f1
		"$GO" version
		dpkg-query -W -f='${Package} ${Version}\n' golang-github-smallstep-certificates-dev golang-step-crypto-dev 2>/dev/null || true
	} | sha256sum | cut -d' ' -f1
)"
if [ -x "$BIN/step-ca" ] && [ -x "$BIN/stepinit" ] && [ "$(cat "$BIN/.hash" 2>/dev/null || true)" = "$hash" ]; then
	log "up to date (hash ${hash:0:12})"
else
	log "building step-ca and stepinit (GOPATH mode, about a minute on 2 cores the first time)"
	rm -f "$BIN/.hash"
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/src/nodejoin"
	cp -r "$SRC/stepca" "$SRC/stepinit" "$tmp/src/nodejoin/"
	if [ -z "$("$GO" env GOCACHE 2>/dev/null || true)" ] || [ "$("$GO" env GOCACHE 2>/dev/null)" = off ]; then
		export GOCACHE="$CACHE/go-build"
	fi
	export GO111MODULE=off GOPATH="$tmp:$GOCODE" GOFLAGS= CGO_ENABLED=1
	export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g} -Wno-deprecated-declarations"
	for t in stepca:step-ca stepinit:stepinit; do
		pkg="nodejoin/${t%%:*}"
		out="$BIN/${t#*:}"
		(cd "$tmp" && "$GO" build -trimpath -ldflags "-s -w" -o "$out.new" "$pkg") || die "go build $pkg failed (see above)"
		mv -f "$out.new" "$out"
	done
	rc=0
	"$BIN/stepinit" >/dev/null 2>&1 || rc=$?
	[ "$rc" = 2 ] || die "built $BIN/stepinit does not run (exit $rc, expected its usage exit 2)"
	echo "$hash" >"$BIN/.hash"
	log "built into $BIN (hash ${hash:0:12})"
fi

echo "step-ca=$BIN/step-ca"
echo "stepinit=$BIN/stepinit"
