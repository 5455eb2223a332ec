# N 32-bit stores to an unowned MMIO address in the 32-bit hole, between a
# start and an end marker.
        .include "common.inc"
        .set MMIO_ADDR, 0xd0000000

        .code32
        .text
        .globl  _start
_start:
        START_MARKER
        movl    $N, %ecx
        testl   %ecx, %ecx
        jz      2f
1:      movl    %eax, MMIO_ADDR
        decl    %ecx
        jnz     1b
2:      END_MARKER
        POWER_OFF
