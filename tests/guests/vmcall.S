# A hypercall, then "exit 5". Hardware KVM answers an unknown hypercall with -KVM_ENOSYS and
# the guest goes on; the PVM host never returns from it.
    .code64
    .globl _start
_start:
    mov $0xffff, %eax
    vmcall
    mov $0x4f0, %dx
    mov $(5 << 8), %eax
    out %eax, %dx
1:  hlt
    jmp 1b
