# Halts with interrupts off: nothing ever wakes it, so only a host-side kick ends the VM.
    .code64
    .globl _start
_start:
    cli
1:  hlt
    jmp 1b
