# Reads a 32-bit value from the first virtio-mmio window, writes 0x1234 at offset 8 of it, and
# exits with the value read (as "exit <value>").
    .code64
    .globl _start
_start:
    mov $0xd0000000, %rbx
    mov (%rbx), %eax
    movl $0x1234, 8(%rbx)
    and $0xff, %eax
    shl $8, %eax
    mov $0x4f0, %dx
    out %eax, %dx
1:  hlt
    jmp 1b
