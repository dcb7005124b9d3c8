#!/usr/bin/env bash
# Runs the tests that need /dev/kvm (VMM tiny guests and kernel boots, the sandbox process end
# to end, the CLI and SDK example against live sandboxes) inside tests/vmm/nested-kvm.sh, for
# hosts without /dev/kvm. Usage: tests/vmm/run-nested-tests.sh [BUILD_DIR] [GTEST_FILTER]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(realpath "${1:-$here/../../build}")
# Three sandboxes booting at once on one emulated CPU miss any sensible ready deadline when the
# host is busy (seen: > 180 s during a parallel build), so that one test is left out here by
# default; run it explicitly on an idle host: run-nested-tests.sh build 'Cli.ParallelCreates*'.
filter=${2:-*:-Cli.ParallelCreatesKeepNamesUniqueAndLoseNoRows}
kernel=${MSB_TEST_KERNEL:-$("$build/msb" kernel-path)}
cache=${MSB_CACHE:-$HOME/.cache/msb}
tests=(tests/vmm/vmm_tiny_guest_test tests/vmm/vmm_boot_test tests/runtime/sandbox_process_test
       tests/cli/cli_test tests/sdk/sdk_example_test)
files=(--file "$build/msb" --file "$kernel" --file "$build/guest/initramfs.cpio"
       --file "$build/examples/hello_sandbox")
for t in "${tests[@]}"; do files+=(--file "$build/$t"); done
for bin in "$build"/tests/guests/*.bin; do files+=(--file "$bin"); done
script="export HOME=/root MSB_CACHE=$cache MSB_TEST_KERNEL=$kernel MSB_TEST_READY_TIMEOUT=180s; status=0"
for t in "${tests[@]}"; do script+="; $build/$t --gtest_filter='$filter' || status=1"; done
script+="; exit \$status"
exec "$here/nested-kvm.sh" --mem 6144 "${files[@]}" -- sh -c "$script"
