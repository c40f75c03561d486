#!/usr/bin/env bash
# Builds (once) and prints the path of a cached Debian bookworm tree that
# boots under systemd-nspawn: minbase plus what every stock Debian server
# has and the unit relies on (procps for ExecReload=/bin/kill,
# ca-certificates for the system CA store). The cache key is a hash of everything that
# shapes the tree, so changing the package list builds a new one; a tree is
# built in a temporary folder and renamed into place, so an interrupted
# build never leaves a half tree behind that a later run would trust.
#
# Usage: tests/systemd/rootfs.sh          prints the tree's path on stdout
# Env:   BROKERGUARD_CI_CACHE  cache folder (default /var/cache/brokerguard-ci)
#        DEBIAN_MIRROR         (default http://deb.debian.org/debian)
set -euo pipefail

cache=${BROKERGUARD_CI_CACHE:-/var/cache/brokerguard-ci}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
packages=systemd,systemd-sysv,dbus,ca-certificates,procps
key=$(printf '%s\n' "$suite" "$packages" "minbase" "v2" | sha256sum | cut -c1-12)
tree="$cache/$suite-$key"

if [[ -x "$tree/lib/systemd/systemd" ]]; then
    echo "rootfs: reusing cached $tree" >&2
    printf '%s\n' "$tree"
    exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.build-$suite-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "rootfs: debootstrap $suite ($packages) into $tmp (takes a few minutes once)" >&2
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
    tail -n 30 "$tmp/debootstrap.log" >&2
    echo "rootfs: debootstrap failed (full log above)" >&2
    exit 1
fi
# Make the tree boot quietly and fast: no getty on a console nobody reads,
# a fixed machine id so journald keeps one journal, a hostname.
rm -f "$tmp/root/etc/machine-id"
systemd-machine-id-setup --root="$tmp/root" >/dev/null 2>&1
echo brokerguard-ci >"$tmp/root/etc/hostname"
# debootstrap writes no /etc/hosts (the installer does on a real host);
# without it "localhost" does not resolve.
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/root/etc/hosts"
ln -sf /dev/null "$tmp/root/etc/systemd/system/console-getty.service"
ln -sf /dev/null "$tmp/root/etc/systemd/system/getty@.service"
find "$tmp/root/var/cache/apt/archives" -name '*.deb' -delete
mv -T "$tmp/root" "$tree"
# Trees for older package lists are dead weight now.
for stale in "$cache/$suite"-*; do
    [[ "$stale" == "$tree" || ! -d "$stale" ]] || rm -rf -- "$stale"
done
echo "rootfs: built $tree" >&2
printf '%s\n' "$tree"
