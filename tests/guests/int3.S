# int3 in CPL0 with no IDT: the PVM host cannot emulate it (KVM_EXIT_INTERNAL_ERROR with the
# instruction bytes); hardware delivers it through the missing IDT and triple-faults.
    .code64
    .globl _start
_start:
    int3
    hlt
