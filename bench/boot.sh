#!/usr/bin/env bash
# Boot benchmark: time from process start to the /init marker for `msb vmm-run` and for QEMU
# microvm booting the same kernel, initramfs and command line, interleaved, several runs each,
# medians and their ratio; plus msb's host-side cost from process start to the first KVM_RUN
# (MSB_BOOT_TIMING). Not a timed test: absolute numbers depend on the host (see ENVIRONMENT.md).
#
#   bench/boot.sh [--nested] [RUNS]       BUILD=build KERNEL=... MEMORY_MIB=128
#
# --nested runs everything inside tests/vmm/nested-kvm.sh (for hosts without /dev/kvm); those
# figures measure a KVM emulated by QEMU TCG and only the ratio means anything.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
nested=0
if [ "${1:-}" = --nested ]; then nested=1; shift; fi
runs=${1:-5}
build=${BUILD:-$root/build}
msb=$build/msb
[ -x "$msb" ] || { echo "$msb missing: build the msb target first" >&2; exit 1; }
kernel=${KERNEL:-$("$msb" kernel-path)}
work=$(mktemp -d /tmp/msb-bench-boot.XXXXXX)
trap 'rm -rf "$work"' EXIT

g++ -O2 -static -o "$work/boot_timer" "$here/boot_timer.cpp"
"$root/guest/initramfs/busybox-initramfs.sh" "$work/initrd.cpio"
# The command line msb boots with (vmm/vm_builder.cpp default_cmdline), given to QEMU too.
# --nested: the inner host is a PVM host as well.
if [ "$nested" = 1 ]; then cmdline=$("$msb" kernel-cmdline --host pvm); else cmdline=$("$msb" kernel-cmdline); fi
echo "kernel $kernel"
echo "initrd $(stat -c %s "$work/initrd.cpio") bytes, uncompressed newc"
echo "cmdline: $cmdline"

export TIMER=$work/boot_timer MSB=$msb KERNEL=$kernel INITRD=$work/initrd.cpio CMDLINE=$cmdline RUNS=$runs
export MEMORY_MIB=${MEMORY_MIB:-128}
if [ "$nested" = 0 ]; then
    [ -e /dev/kvm ] || { echo "/dev/kvm not found; try --nested" >&2; exit 1; }
    sh "$here/boot_runs.sh"
else
    cp "$here/boot_runs.sh" "$work/boot_runs.sh"
    files=()
    for f in "$TIMER" "$MSB" "$KERNEL" "$INITRD" "$work/boot_runs.sh" "$(command -v qemu-system-x86_64)" \
        /usr/share/qemu/bios-microvm.bin /usr/share/qemu/qboot.rom /usr/share/qemu/linuxboot_dma.bin; do
        files+=(--file "$f")
    done
    "$root/tests/vmm/nested-kvm.sh" --mem 2048 "${files[@]}" -- \
        env TIMER="$TIMER" MSB="$MSB" KERNEL="$KERNEL" INITRD="$INITRD" CMDLINE="$CMDLINE" RUNS="$RUNS" \
        MEMORY_MIB="$MEMORY_MIB" sh "$work/boot_runs.sh" | grep -v -E '^\[ *[0-9.]+\] |SeaBIOS|Booting from'
fi
