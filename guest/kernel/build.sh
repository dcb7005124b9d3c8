#!/usr/bin/env bash
# Builds msb's guest kernel from Debian's linux-source-6.1 and caches the uncompressed vmlinux.
#
#   guest/kernel/build.sh           build when missing; print the cached vmlinux path
#   guest/kernel/build.sh --key     print the cache key (hash of every input) and exit
#   guest/kernel/build.sh --path    print where the vmlinux for this key lives (built or not)
#
# The key covers the Debian source package version, the patch, the config fragment and this
# script, so changing any of them builds a new kernel beside the old one.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${MSB_CACHE:-$HOME/.cache/msb}
tarball=/usr/src/linux-source-6.1.tar.xz

source_version() {
    dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || echo missing
}

key() {
    { source_version; cat "$here/msb-guest.patch" "$here/msb.config" "$here/build.sh"; } |
        sha256sum | cut -c1-16
}

out_dir() { echo "$cache/kernel/$(key)"; }

case "${1:-}" in
--key) key; exit 0 ;;
--path) echo "$(out_dir)/vmlinux"; exit 0 ;;
"") ;;
*) echo "usage: $0 [--key|--path]" >&2; exit 2 ;;
esac

out=$(out_dir)
if [ -f "$out/vmlinux" ]; then
    echo "$out/vmlinux"
    exit 0
fi

if [ ! -f "$tarball" ]; then
    echo "guest kernel: $tarball is missing; run scripts/setup (installs linux-source-6.1)" >&2
    exit 1
fi

work="$cache/kernel/build-$(key)"
rm -rf "$work"
mkdir -p "$work"
log="$work/build.log"
finish() {
    local status=$?
    if [ "$status" != 0 ] && [ -s "$log" ]; then
        tail -n 40 "$log" >&2
        echo "guest kernel: failed (last lines of the build log above)" >&2
    fi
    rm -rf "$work"
}
trap finish EXIT

step() { printf 'guest kernel: %s\n' "$*" >&2; }

step "unpacking $(basename "$tarball") ($(source_version))"
# Documentation is never read by the build (Kconfig sources Documentation/Kconfig, which stays).
tar -C "$work" -xJf "$tarball" --exclude='linux-source-6.1/Documentation/[!K]*'
src="$work/linux-source-6.1"

step "applying msb-guest.patch"
patch -d "$src" -p1 --quiet <"$here/msb-guest.patch"

step "configuring (tinyconfig + msb.config)"
(
    cd "$src"
    make -s ARCH=x86_64 tinyconfig >>"$log" 2>&1
    KCONFIG_CONFIG=.config scripts/kconfig/merge_config.sh -m .config "$here/msb.config" >>"$log" 2>&1
    make -s ARCH=x86_64 olddefconfig >>"$log" 2>&1
)

# Every option the fragment asks for must have survived olddefconfig: a dependency we did not
# satisfy silently drops an option, and we would rather fail here than boot without a driver.
missing=0
while IFS= read -r line; do
    case "$line" in
    CONFIG_*=*)
        if ! grep -qxF "$line" "$src/.config"; then
            echo "guest kernel: config wants '$line' but got '$(grep -E "^(# )?${line%%=*}[= ]" "$src/.config" || echo unset)'" >&2
            missing=1
        fi
        ;;
    "# CONFIG_"*" is not set")
        opt=${line#\# }
        opt=${opt%% *}
        if grep -qE "^$opt=" "$src/.config"; then
            echo "guest kernel: config wants $opt off but it is on" >&2
            missing=1
        fi
        ;;
    esac
done <"$here/msb.config"

# Nothing that pulls in kernel SIMD, int3 patching or modules may be on, whatever selected it.
forbidden='^CONFIG_(MODULES|JUMP_LABEL|KPROBES|RAID6_PQ|XOR_BLOCKS|BPF_JIT|CRYPTO_[A-Z0-9_]*_(INTEL|SSSE3|AVX|AVX2|AVX512|X86|X86_64|PCLMUL|NI_INTEL|CLMUL_NI_INTEL))=y'
if grep -E "$forbidden" "$src/.config" >&2; then
    echo "guest kernel: the options above make the guest run instructions PVM cannot emulate" >&2
    missing=1
fi
[ "$missing" = 0 ] || exit 1

step "building vmlinux with $(nproc) jobs (about 2-3 minutes on 2 cores)"
start=$(date +%s)
make -C "$src" ARCH=x86_64 -j"$(nproc)" vmlinux >>"$log" 2>&1
step "built in $(($(date +%s) - start)) s"

mkdir -p "$out.tmp"
cp "$src/vmlinux" "$out.tmp/vmlinux"
cp "$src/.config" "$out.tmp/config"
strip --strip-debug "$out.tmp/vmlinux" 2>/dev/null || true
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out/vmlinux"
