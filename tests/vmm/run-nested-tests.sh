#!/usr/bin/env bash
# Runs the VMM's kvm- and guest-labelled test binaries inside tests/vmm/nested-kvm.sh, for
# hosts without /dev/kvm. Usage: tests/vmm/run-nested-tests.sh [BUILD_DIR] [GTEST_FILTER]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(realpath "${1:-$here/../../build}")
filter=${2:-*}
kernel=${MSB_TEST_KERNEL:-$("$build/msb" kernel-path)}
files=(--file "$build/msb" --file "$kernel" --file "$build/tests/vmm/vmm_tiny_guest_test"
       --file "$build/tests/vmm/vmm_boot_test" --file "$build/guest/initramfs.cpio"
       --file "$build/tests/runtime/sandbox_process_test")
for bin in "$build"/tests/guests/*.bin; do files+=(--file "$bin"); done
exec "$here/nested-kvm.sh" --mem 6144 "${files[@]}" -- sh -c \
    "export MSB_TEST_KERNEL=$kernel; $build/tests/vmm/vmm_tiny_guest_test --gtest_filter='$filter' && $build/tests/vmm/vmm_boot_test --gtest_filter='$filter' && $build/tests/runtime/sandbox_process_test --gtest_filter='$filter'"
