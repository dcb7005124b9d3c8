#!/usr/bin/env bash
# virtio-blk benchmark: sequential read of a raw image from the guest (/dev/vda to its end in
# 64 KiB reads, after the guest dropped its page cache) against the same read of the same file on
# the host (page cache warm: the best the host can do), for msb and for QEMU microvm on the same
# kernel, interleaved. Both sides are timed by bench/guest_timer, inside the reading process, so
# the guest's (slow, on PVM hosts) process start-up is not counted.
#
#   bench/blk.sh MIB RUNS       BUILD=build KERNEL=... MEMORY_MIB=256
#   → lines "host seconds=S bytes=B", "msb seconds=S bytes=B", "qemu seconds=S bytes=B"
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
mib=${1:?usage: bench/blk.sh MIB RUNS}
runs=${2:-3}
build=${BUILD:-$root/build}
msb=$build/msb
[ -x "$msb" ] || { echo "$msb missing: build the msb target first" >&2; exit 1; }
timer=$build/bench/guest_timer
[ -x "$timer" ] || { echo "$timer missing: build the guest_timer target first" >&2; exit 1; }
kernel=${KERNEL:-$("$msb" kernel-path)}
memory=${MEMORY_MIB:-256}
work=$(mktemp -d /tmp/msb-bench-blk.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Random bytes, so that no layer can skip reading them.
head -c $((mib * 1024 * 1024)) /dev/urandom > "$work/disk.img"
cat > "$work/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo MSB-INIT-MARKER
echo 3 > /proc/sys/vm/drop_caches
echo "guest $(/bin/guest_timer read /dev/vda)"
exit 0
INIT
# busybox, guest_timer and the init above, as one uncompressed newc archive (QEMU takes one).
mkdir -p "$work/root/bin" "$work/root/proc" "$work/root/sys" "$work/root/dev" "$work/root/tmp"
cp /bin/busybox "$timer" "$work/root/bin/"
ln -s busybox "$work/root/bin/sh"
install -m 755 "$work/init" "$work/root/init"
(cd "$work/root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) > "$work/initrd.cpio"
if [ "$(cat /sys/module/kvm_pvm/initstate 2>/dev/null)" = live ]; then
    cmdline=$("$msb" kernel-cmdline --host pvm)
else
    cmdline=$("$msb" kernel-cmdline)
fi

# guest_timer's "read_us=T bytes=B" → "seconds=S bytes=B"
as_seconds() {
    tr -d '\r' | sed -n 's/.*read_us=\([0-9]*\) bytes=\([0-9]*\).*/\1 \2/p' | tail -1 |
        awk '{ printf "seconds=%.6f bytes=%s\n", $1 / 1e6, $2 }'
}
for i in $(seq "$runs"); do
    # Host: warm the page cache, then time the same read.
    "$timer" read "$work/disk.img" >/dev/null
    echo "host $("$timer" read "$work/disk.img" | as_seconds)"

    out=$(timeout 3600 "$msb" vmm-run --kernel "$kernel" --initrd "$work/initrd.cpio" \
        --memory-mib "$memory" --disk "$work/disk.img:raw:ro")
    s=$(echo "$out" | grep '^guest ' | as_seconds)
    [ -n "$s" ] || { echo "msb: the guest did not report its read time:" >&2; echo "$out" | tail -20 >&2; exit 1; }
    echo "msb $s"

    # QEMU microvm, the same kernel command line plus its own virtio-mmio declarations (which it
    # adds to the command line only without ACPI).
    out=$(timeout 3600 qemu-system-x86_64 -M microvm,pit=on,pic=on,rtc=on,acpi=off -enable-kvm \
        -cpu host,-cx16,-kvm-pv-ipi,-kvm-pv-sched-yield,-kvm-pv-unhalt,-arch-capabilities -m "$memory" \
        -nodefaults -no-user-config -nographic -serial stdio -device i8042 \
        -drive "file=$work/disk.img,format=raw,if=none,id=d0,readonly=on" \
        -device virtio-blk-device,drive=d0 \
        -kernel "$kernel" -initrd "$work/initrd.cpio" -append "$cmdline" -no-reboot)
    s=$(echo "$out" | grep '^guest ' | as_seconds)
    [ -n "$s" ] || { echo "qemu: the guest did not report its read time:" >&2; echo "$out" | tail -20 >&2; exit 1; }
    echo "qemu $s"
done
