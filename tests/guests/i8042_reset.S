# Pulses the reset line through the keyboard controller, as Linux does with reboot=k.
    .code64
    .globl _start
_start:
    mov $0xfe, %al
    out %al, $0x64
1:  hlt
    jmp 1b
