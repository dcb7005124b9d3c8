# Reads back the boot MSRs the VMM sets (arch/x86_64/msrs.h) and reports what it found as an
# exit status: bit 0 when IA32_MTRR_DEF_TYPE is "enabled, write-back" (0x806), bit 1 when
# IA32_MISC_ENABLE has fast strings on, bit 2 when IA32_LSTAR is zero.
    .code64
    .globl _start
_start:
    xor %ebx, %ebx
    mov $0x2ff, %ecx
    rdmsr
    cmp $0x806, %eax
    jne 1f
    or $1, %ebx
1:  mov $0x1a0, %ecx
    rdmsr
    test $1, %eax
    jz 2f
    or $2, %ebx
2:  mov $0xc0000082, %ecx
    rdmsr
    or %edx, %eax
    jnz 3f
    or $4, %ebx
3:  mov %ebx, %eax
    shl $8, %eax
    mov $0x4f0, %dx
    out %eax, %dx
4:  hlt
    jmp 4b
