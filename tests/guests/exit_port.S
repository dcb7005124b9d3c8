# Prints "hi\n" on the serial port, then reports wait status 42 << 8 ("exit 42") on the exit port.
    .code64
    .globl _start
_start:
    mov $0x3f8, %dx
    mov $'h', %al
    out %al, %dx
    mov $'i', %al
    out %al, %dx
    mov $'\n', %al
    out %al, %dx
    mov $0x4f0, %dx
    mov $(42 << 8), %eax
    out %eax, %dx
1:  hlt
    jmp 1b
