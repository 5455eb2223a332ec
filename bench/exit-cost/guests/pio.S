# N port writes to an unowned port, between a start and an end marker.
        .include "common.inc"
        .set PIO_PORT, 0xf00            # nothing decodes it in bunvmm, the floor or QEMU microvm

        .code32
        .text
        .globl  _start
_start:
        START_MARKER
        movl    $N, %ecx
        movw    $PIO_PORT, %dx
        testl   %ecx, %ecx
        jz      2f
1:      outb    %al, %dx
        decl    %ecx
        jnz     1b
2:      END_MARKER
        POWER_OFF
