#!/usr/bin/env bash
# Runs a command inside a throw-away QEMU (TCG) virtual machine that has a working /dev/kvm,
# for hosts whose own /dev/kvm is missing (e.g. a PVM guest where kvm_pvm refuses to bind).
# QEMU's TCG emulates AMD SVM, so Debian's cloud kernel loads kvm_amd inside it; our VMM then
# runs there against a real (emulated-hardware) KVM. Slow, but it executes every KVM code path.
#
#   tests/vmm/nested-kvm.sh [--mem MiB] [--file PATH]... -- COMMAND [ARGS...]
#
# Every --file (and every dynamically linked binary among them, with its libraries) is copied
# into the VM's initramfs at the same absolute path. COMMAND runs as root with /dev/kvm present;
# its output is streamed, and this script exits with COMMAND's exit status (or 99 when the VM
# did not report one).
set -euo pipefail

mem=3072
files=()
while [ $# -gt 0 ]; do
    case "$1" in
    --mem) mem=$2; shift 2 ;;
    --file) files+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--mem MiB] [--file PATH]... -- COMMAND [ARGS...]" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "$0: no command" >&2; exit 2; }

cache=${MSB_CACHE:-$HOME/.cache/msb}/nested-kvm
mkdir -p "$cache"
if ! ls "$cache"/x/boot/vmlinuz-* >/dev/null 2>&1; then
    cloud_kernel_package() {
        apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image/{print $2; exit}'
    }
    pkg=$(cloud_kernel_package)
    if [ -z "$pkg" ]; then  # a fresh machine may have no package lists yet
        apt-get update -qq >/dev/null 2>&1 || true
        pkg=$(cloud_kernel_package)
    fi
    [ -n "$pkg" ] || { echo "nested-kvm: cannot find Debian's cloud kernel package" >&2; exit 98; }
    (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1 && dpkg-deb -x ./*.deb x && rm -f ./*.deb)
fi
kernel=$(ls "$cache"/x/boot/vmlinuz-* | head -n1)
moddir=$(ls -d "$cache"/x/lib/modules/*)

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,proc,sys,dev,tmp,mod}
cp /bin/busybox "$root/bin/busybox"
for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko; do cp "$moddir/kernel/$m" "$root/mod/"; done

copy() {  # copy a file to the same absolute path inside the root, plus its libraries
    local f=$1
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
    if file -L "$f" | grep -q 'dynamically linked'; then
        ldd "$f" | grep -o '/[^ ]*' | while read -r lib; do
            [ -e "$root$lib" ] || { mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"; }
        done
    fi
}
for f in "${files[@]}"; do copy "$(realpath -s "$f")"; done

printf '%q ' "$@" > "$root/cmd"
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev;
insmod /mod/irqbypass.ko && insmod /mod/kvm.ko && insmod /mod/kvm-amd.ko
[ -e /dev/kvm ] || echo "nested-kvm: no /dev/kvm inside the VM"
cd /
sh -c "$(cat /cmd)"
echo "nested-kvm: exit=$?"
poweroff -f
INIT
chmod 755 "$root/init"
(cd "$root" && find . -mindepth 1 | cpio --quiet -o -H newc) > "$root.cpio"
trap 'rm -rf "$root" "$root.cpio"' EXIT

out=$(mktemp)
set +e
timeout 1800 qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 1 -m "$mem" -nographic -nodefaults \
    -serial stdio -no-reboot -kernel "$kernel" -initrd "$root.cpio" \
    -append "console=ttyS0 quiet panic=-1 mitigations=off" | tee "$out"
set -e
status=$(grep -a -o 'nested-kvm: exit=[0-9]*' "$out" | tail -n1 | cut -d= -f2)
rm -f "$out"
exit "${status:-99}"
