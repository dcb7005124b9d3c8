# #UD with no IDT: a triple fault on every host.
    .code64
    .globl _start
_start:
    ud2
