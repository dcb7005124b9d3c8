#!/bin/sh
# Inner loop of bench/boot.sh, POSIX sh so it also runs under busybox inside nested-kvm.sh.
# Environment: TIMER MSB KERNEL INITRD CMDLINE RUNS MEMORY_MIB
set -eu
marker=MSB-INIT-MARKER
results=$(mktemp)
i=0
while [ "$i" -lt "$RUNS" ]; do
    i=$((i + 1))
    # Interleave the two VMMs so drift in host load hits both alike. -arch-capabilities: the
    # nested PVM host refuses QEMU's write of MSR 0x10a and QEMU then aborts.
    "$TIMER" "$marker" 600 -- "$MSB" vmm-run --kernel "$KERNEL" --initrd "$INITRD" \
        --memory-mib "$MEMORY_MIB" | sed 's/^/msb  /' | tee -a "$results"
    "$TIMER" "$marker" 600 -- timeout 600 qemu-system-x86_64 \
        -M microvm,pit=on,pic=on,rtc=on -enable-kvm \
        -cpu host,-cx16,-kvm-pv-ipi,-kvm-pv-sched-yield,-kvm-pv-unhalt,-arch-capabilities -m "$MEMORY_MIB" \
        -nodefaults -no-user-config -nographic -serial stdio -device i8042 \
        -kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE" -no-reboot | sed 's/^/qemu /' | tee -a "$results"
done
median() {  # median of the numbers on stdin
    sort -n | awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'
}
field() { grep "^$1 " "$results" | tr ' ' '\n' | grep "^$2=" | cut -d= -f2 | grep -v '^-1' ; }
msb_marker=$(field msb marker_ms | median)
qemu_marker=$(field qemu marker_ms | median)
msb_first=$(field msb first_run_ms | median)
echo "median time to /init marker over $RUNS runs: msb ${msb_marker} ms, qemu microvm ${qemu_marker} ms"
echo "msb host-side cost, process start to first KVM_RUN (median): ${msb_first} ms"
awk -v a="$msb_marker" -v b="$qemu_marker" 'BEGIN { if (b > 0) printf "ratio msb/qemu: %.3f\n", a / b }'
rm -f "$results"
