#!/usr/bin/env bash
# ctest entry: where this host has no /dev/kvm (e.g. a PVM guest whose kvm_pvm refuses to bind),
# run the kvm- and guest-labelled VMM tests inside a QEMU-emulated machine that has KVM
# (run-nested-tests.sh). Where /dev/kvm exists those tests run directly, so this one skips (77).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -e /dev/kvm ]; then
    echo "skipped: /dev/kvm exists, the kvm and guest tests run directly"
    exit 77
fi
echo "no /dev/kvm on this host: running the kvm and guest tests under QEMU-emulated KVM"
exec "$here/run-nested-tests.sh" "$@"
