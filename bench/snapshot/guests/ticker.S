# The snapshot bench's guest: writes one word into every page of TOUCH_BYTES of RAM from 2 MiB up (its
# working set: what a snapshot must save), prints "R" on COM1, then counts forever and prints "." every
# 1024 iterations, so the first output after a restore shows the guest running again. One vCPU. Raw
# payload entry contract; under QEMU through bench/pause-latency/guests/pvh-entry.S.
.include "platform.inc"
.ifndef TOUCH_BYTES
.set TOUCH_BYTES, 0x1000000
.endif
.set TOUCH_BASE,    0x200000
.set PAGE,          4096
.set TICK_MASK,     0x3ff

.text
.code32
image_start:
        mov     $TOUCH_BASE, %edi
1:      mov     %edi, (%edi)                # a non-zero word: the page holds data
        add     $PAGE, %edi
        cmp     $TOUCH_BASE + TOUCH_BYTES, %edi
        jb      1b
        mov     $COM1, %dx
        mov     $'R', %al
        out     %al, %dx
        xor     %ecx, %ecx
2:      inc     %ecx
        test    $TICK_MASK, %ecx
        jnz     2b
        mov     $'.', %al
        out     %al, %dx
        jmp     2b
