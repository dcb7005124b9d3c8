# An SSE instruction whose operand is MMIO (unbacked guest-physical space): KVM must emulate it
# and its instruction emulator has no SSE arithmetic, so the VM stops with
# KVM_EXIT_INTERNAL_ERROR (emulation failure) on hardware KVM as on PVM.
    .code64
    .globl _start
_start:
    mov %cr4, %rax
    or $0x200, %rax              # CR4.OSFXSR: SSE allowed
    mov %rax, %cr4
    mov $0xe0000000, %rbx        # in the MMIO hole, no device there
    paddd (%rbx), %xmm0
    hlt
