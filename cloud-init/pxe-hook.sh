#!/bin/sh
# node-join hook for unattended installs (Debian preseed `d-i preseed/late_command`, Ubuntu
# autoinstall `late-commands`, any PXE installer that mounts the new system at /target): downloads
# node-join, checks its SHA-256, installs it into the target system, then either joins now
# (mode join: `node-join join --root $TARGET ...`) or installs a unit that joins at first boot
# (mode firstboot; the flags checked first by `node-join join --check-flags`).
#
# Usage: pxe-hook.sh [--target DIR] [--url URL] [--sha256 HEX] [--mode join|firstboot] [-- JOIN FLAGS...]
#   --target   TARGET            the installed system's root (default /target)
#   --url      NODE_JOIN_URL     URL of the node-join binary for this architecture (required)
#   --sha256   NODE_JOIN_SHA256  its SHA-256, from SHA256SUMS (64 hex, "sha256:" prefix allowed; required)
#   --mode     NODE_JOIN_MODE    join (default) or firstboot
# Options win over the environment. Everything after `--` is passed to `node-join join` as is.
# Paths in those flags are read as given: in mode join they are installer paths (e.g.
# --ca-auth-key-file /target/etc/node-join/ca-auth.key; node-join records them as the installed
# system sees them), in mode firstboot they are the installed system's (/etc/node-join/ca-auth.key).
#
# Exit status: 0 done; 1 download failed, checksum mismatch (nothing is installed then) or any other
# failure; 2 usage error; in mode join, node-join's own exit status when the join fails, except
# where node-join left its retry unit (CA or network down, exit 3; lock, 7; clock not set, 11):
# then 0, and the installed system joins on its own at boot (node-join-join.service, docs/clock.md).
set -eu

prog=pxe-hook.sh
die() {
  echo "$prog: error: $*" >&2
  exit 1
}
usage() {
  echo "$prog: usage error: $*" >&2
  echo "usage: $prog [--target DIR] [--url URL] [--sha256 HEX] [--mode join|firstboot] [-- JOIN FLAGS...]" >&2
  exit 2
}

target=${TARGET:-/target}
url=${NODE_JOIN_URL:-}
sum=${NODE_JOIN_SHA256:-}
mode=${NODE_JOIN_MODE:-join}
while [ $# -gt 0 ]; do
  case $1 in
    --target | --url | --sha256 | --mode)
      [ $# -ge 2 ] || usage "$1 needs a value"
      case $1 in
        --target) target=$2 ;;
        --url) url=$2 ;;
        --sha256) sum=$2 ;;
        --mode) mode=$2 ;;
      esac
      shift 2
      ;;
    --target=*) target=${1#*=}; shift ;;
    --url=*) url=${1#*=}; shift ;;
    --sha256=*) sum=${1#*=}; shift ;;
    --mode=*) mode=${1#*=}; shift ;;
    --) shift; break ;;
    -h | --help)
      sed -n '2,/^set -eu$/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *) usage "unknown argument '$1' (node-join join flags go after --)" ;;
  esac
done

[ -n "$url" ] || usage "no binary URL: set NODE_JOIN_URL or pass --url"
[ -n "$sum" ] || usage "no checksum: set NODE_JOIN_SHA256 or pass --sha256 (the binary is never installed unchecked)"
sum=$(printf '%s' "${sum#sha256:}" | tr 'A-F' 'a-f')
case $sum in
  *[!0-9a-f]*) usage "NODE_JOIN_SHA256 is not 64 hex digits: $sum" ;;
esac
[ "${#sum}" -eq 64 ] || usage "NODE_JOIN_SHA256 is not 64 hex digits: $sum"
case $mode in
  join | firstboot) ;;
  *) usage "NODE_JOIN_MODE must be join or firstboot, not '$mode'" ;;
esac
[ -d "$target" ] || die "target root $target is not a directory (set TARGET or --target)"
target=$(cd "$target" && pwd)

# 1. Download to a scratch directory outside the target, check, and only then install.
work=$(mktemp -d "${TMPDIR:-/tmp}/node-join-hook.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' HUP INT TERM
echo "$prog: downloading $url"
if command -v curl >/dev/null 2>&1; then
  curl -fsSL --retry 5 --retry-delay 2 --retry-connrefused -o "$work/node-join" "$url" \
    || die "download of $url failed (curl exit $?); nothing installed"
elif command -v wget >/dev/null 2>&1; then
  wget -q -O "$work/node-join" "$url" || die "download of $url failed (wget exit $?); nothing installed"
else
  die "neither curl nor wget is available to download $url"
fi
if command -v sha256sum >/dev/null 2>&1; then
  got=$(sha256sum "$work/node-join" | cut -d' ' -f1)
elif command -v openssl >/dev/null 2>&1; then
  got=$(openssl dgst -sha256 -r "$work/node-join" | cut -d' ' -f1)
else
  die "neither sha256sum nor openssl is available to check the download; nothing installed"
fi
[ "$got" = "$sum" ] || die "SHA-256 mismatch for $url: expected $sum, got $got; nothing installed"

bindir=$target/usr/local/bin
mkdir -p "$bindir"
cp "$work/node-join" "$bindir/.node-join.new"
chmod 0755 "$bindir/.node-join.new"
mv -f "$bindir/.node-join.new" "$bindir/node-join"
echo "$prog: installed $bindir/node-join (sha256 $got)"

units=$target/etc/systemd/system
wants=$units/multi-user.target.wants

# The installed system's kubelet unit, as a path on that system (empty when there is none).
kubelet_unit() {
  for d in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
    if [ -f "$target$d/kubelet.service" ]; then
      echo "$d/kubelet.service"
      return
    fi
  done
}

# One argument quoted for a systemd command line (systemd.service(5), "Command lines"): inside
# double quotes \ and " are escaped; % (specifiers) and $ (environment) are doubled.
sd_quote() {
  printf '"%s"' "$(printf '%s\n' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/%/%%/g' -e 's/\$/$$/g')"
}

if [ "$mode" = join ]; then
  # 2a. Join now, from the installer, into the target.
  echo "$prog: node-join join --root $target $*"
  rc=0
  "$bindir/node-join" join --root "$target" "$@" || rc=$?
  retry=$target/etc/systemd/system/node-join-join.service
  if [ "$rc" -ne 0 ] && [ -f "$retry" ]; then
    case $rc in
      3 | 7 | 11)
        # What a later attempt can fix: the installed system retries after its network and clock
        # are up, and enables the kubelet once joined (the unit's ExecStartPost).
        echo "$prog: node-join join could not finish now (exit $rc): the installed system retries it at boot ($retry)" >&2
        exit 0
        ;;
    esac
  fi
  [ "$rc" -eq 0 ] || {
    echo "$prog: error: node-join join failed (exit $rc)" >&2
    if [ "$rc" -eq 126 ] || [ "$rc" -eq 127 ]; then
      echo "$prog: the binary cannot run in this installer environment (it needs glibc and libstdc++, which Debian's d-i lacks): use --mode firstboot" >&2
    fi
    exit "$rc"
  }
  unit=$(kubelet_unit)
  if [ -n "$unit" ]; then
    # What `systemctl enable kubelet` does (WantedBy=multi-user.target), without systemd running.
    mkdir -p "$wants"
    ln -sfn "$unit" "$wants/kubelet.service"
    echo "$prog: enabled kubelet.service in $target"
  else
    echo "$prog: note: no kubelet.service in $target: enable the kubelet once it is installed" >&2
  fi
  exit 0
fi

# 2b. First boot: a oneshot unit that joins once (kubelet.conf exists afterwards), then enables
# and starts the kubelet without waiting for it. Ordered after time-sync.target (a real wait only
# where systemd-time-wait-sync.service is enabled: systemd-time-wait-sync.service(8)); join itself
# waits for the clock up to --timeout, and where the attempt fails for what a later one can fix
# (the clock, the CA or the network) it leaves node-join-join.service, which retries until joined.
for a in "$@"; do
  case $a in
    *'
'*) die "a join flag contains a newline, which a unit's ExecStart cannot carry: $a" ;;
  esac
done
# The flags are checked now by the binary's own parser (node-join join --check-flags: nothing
# read or written but the flags), so a bad one fails the install instead of the first boot. Where
# the binary cannot run in the installer (Debian's d-i lacks glibc), the unit is written unchecked,
# with a warning.
crc=0
check=$("$bindir/node-join" join --check-flags "$@" 2>&1) || crc=$?
case $crc in
  0) ;;
  2)
    echo "$prog: error: the join flags are not valid, no unit written: $check" >&2
    exit 2
    ;;
  *) echo "$prog: warning: the join flags were not checked (node-join cannot run here, exit $crc): $check" >&2 ;;
esac
mkdir -p "$wants"
unit=$units/node-join-firstboot.service
{
  echo "# Written by node-join's pxe-hook.sh: joins this node at its first boot, once."
  echo "[Unit]"
  echo "Description=Join this node to the Kubernetes cluster (node-join, first boot)"
  echo "Wants=network-online.target"
  echo "After=network-online.target time-sync.target"
  echo "Before=kubelet.service"
  echo "ConditionPathExists=!/etc/kubernetes/kubelet.conf"
  echo ""
  echo "[Service]"
  echo "Type=oneshot"
  printf '%s' "ExecStart=/usr/local/bin/node-join join"
  for a in "$@"; do
    printf ' %s' "$(sd_quote "$a")"
  done
  echo ""
  echo "ExecStartPost=/bin/systemctl enable --now --no-block kubelet.service"
  echo "StandardOutput=journal+console"
  echo "StandardError=journal+console"
  echo ""
  echo "[Install]"
  echo "WantedBy=multi-user.target"
} >"$unit.tmp"
mv -f "$unit.tmp" "$unit"
# What `systemctl enable node-join-firstboot.service` does, without systemd running.
ln -sfn /etc/systemd/system/node-join-firstboot.service "$wants/node-join-firstboot.service"
echo "$prog: installed and enabled $unit: the node joins at its first boot"
