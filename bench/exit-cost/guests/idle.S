# Start-up and RSS guest: one byte to the serial port, then halt with
# interrupts off (the vCPU sleeps in the kernel; nothing reaches the VMM).
        .include "common.inc"

        .code32
        .text
        .globl  _start
_start:
        START_MARKER
        HALT_FOREVER
