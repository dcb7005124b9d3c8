#!/usr/bin/env bash
# Builds a minimal uncompressed newc initramfs around Debian's busybox-static, for VMM tests
# and boot benchmarks.
#
#   guest/initramfs/busybox-initramfs.sh OUT.cpio [INIT_SCRIPT]
#
# /init is INIT_SCRIPT (default: mount /proc and /sys, print "MSB-INIT-MARKER", then run the
# kernel command-line variable msb_cmd if set, else power off through the exit port by exiting).
# Uncompressed on purpose: on the PVM host unpacking gzip in the guest costs seconds.
set -euo pipefail

out=${1:?usage: $0 OUT.cpio [INIT_SCRIPT]}
init=${2:-}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "$busybox missing: apt-get install busybox-static" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,etc}
cp "$busybox" "$root/bin/busybox"
for applet in sh mount echo cat grep nproc reboot sleep ls; do ln -s busybox "$root/bin/$applet"; done
if [ -n "$init" ]; then
    cp "$init" "$root/init"
else
    cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo MSB-INIT-MARKER
if [ -n "$msb_cmd" ]; then eval "$msb_cmd"; fi
exit 0
INIT
fi
chmod 755 "$root/init"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) > "$out"
