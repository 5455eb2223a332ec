# Serial echo: prints "ready", then polls LSR.DR and sends every received byte back, upper-cased
# when it is a lower-case letter; a received "q" powers the VM off.
.include "platform.inc"
.set UART_LSR, 5
.set UART_LSR_DR, 0x01
.text
.code32
image_start:
        mov     $COM1, %dx
        mov     $msg, %esi
1:      lodsb
        test    %al, %al
        jz      poll
        out     %al, %dx
        jmp     1b
poll:
        mov     $COM1 + UART_LSR, %dx
        in      %dx, %al
        test    $UART_LSR_DR, %al
        jz      poll
        mov     $COM1, %dx
        in      %dx, %al
        cmp     $'q', %al
        je      off
        cmp     $'a', %al
        jb      3f
        cmp     $'z', %al
        ja      3f
        sub     $0x20, %al
3:      out     %al, %dx
        jmp     poll
off:
        mov     $S5_SLEEP_VALUE, %al
        mov     $ACPI_SLEEP_CONTROL, %dx
        out     %al, %dx
4:      hlt
        jmp     4b
msg:    .asciz "ready\n"
