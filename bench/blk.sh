#!/usr/bin/env bash
# virtio-blk benchmark: sequential read of a raw image from the guest (`dd if=/dev/vda bs=1M`
# after dropping the guest's page cache) against `dd` of the same file on the host (page cache
# warm: the best the host can do), for msb and for QEMU microvm on the same kernel, interleaved.
#
#   bench/blk.sh MIB RUNS       BUILD=build KERNEL=... MEMORY_MIB=256
#   → lines "host seconds=S", "msb seconds=S", "qemu seconds=S", one per run each
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
mib=${1:?usage: bench/blk.sh MIB RUNS}
runs=${2:-3}
build=${BUILD:-$root/build}
msb=$build/msb
[ -x "$msb" ] || { echo "$msb missing: build the msb target first" >&2; exit 1; }
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
echo MSB-INIT-MARKER
echo 3 > /proc/sys/vm/drop_caches
start=$(cut -d' ' -f1 /proc/uptime)
dd if=/dev/vda of=/dev/null bs=1M 2> /tmp/dd.log
end=$(cut -d' ' -f1 /proc/uptime)
echo "guest-dd $(tr '\n' ' ' < /tmp/dd.log)"
awk -v a="$start" -v b="$end" 'BEGIN { printf "guest seconds=%.3f\n", b - a }'
exit 0
INIT
"$root/guest/initramfs/busybox-initramfs.sh" "$work/initrd.cpio" "$work/init"
if [ "$(cat /sys/module/kvm_pvm/initstate 2>/dev/null)" = live ]; then
    cmdline=$("$msb" kernel-cmdline --host pvm)
else
    cmdline=$("$msb" kernel-cmdline)
fi

seconds_of() {  # the guest's "guest seconds=S" line → S
    sed -n 's/^guest seconds=\([0-9.]*\).*/\1/p' | tr -d '\r' | tail -1
}
for i in $(seq "$runs"); do
    # Host: warm the page cache, then time dd.
    dd if="$work/disk.img" of=/dev/null bs=1M 2>/dev/null
    start=$(date +%s.%N)
    dd if="$work/disk.img" of=/dev/null bs=1M 2>/dev/null
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "host seconds=%.4f\n", b - a }'

    out=$(timeout 3600 "$msb" vmm-run --kernel "$kernel" --initrd "$work/initrd.cpio" \
        --memory-mib "$memory" --disk "$work/disk.img:raw:ro")
    s=$(echo "$out" | seconds_of)
    [ -n "$s" ] || { echo "msb: the guest did not report its dd time:" >&2; echo "$out" | tail -20 >&2; exit 1; }
    echo "msb seconds=$s"

    # QEMU microvm, the same kernel command line plus its own virtio-mmio declarations.
    out=$(timeout 3600 qemu-system-x86_64 -M microvm,pit=on,pic=on,rtc=on -enable-kvm \
        -cpu host,-cx16,-kvm-pv-ipi,-kvm-pv-sched-yield,-kvm-pv-unhalt,-arch-capabilities -m "$memory" \
        -nodefaults -no-user-config -nographic -serial stdio -device i8042 \
        -drive "file=$work/disk.img,format=raw,if=none,id=d0,readonly=on" \
        -device virtio-blk-device,drive=d0 \
        -kernel "$kernel" -initrd "$work/initrd.cpio" -append "$cmdline" -no-reboot)
    s=$(echo "$out" | seconds_of)
    [ -n "$s" ] || { echo "qemu: the guest did not report its dd time:" >&2; echo "$out" | tail -20 >&2; exit 1; }
    echo "qemu seconds=$s"
done
