# Prints a line, then pulses the reset line through the i8042 (command 0xfe), or, with ACPI=1,
# through the ACPI reset register; then spins (a real machine would reset under it).
.include "platform.inc"
.ifndef ACPI
.set ACPI, 0
.endif
.text
.code32
image_start:
        mov     $msg, %esi
        mov     $COM1, %dx
1:      lodsb
        test    %al, %al
        jz      2f
        out     %al, %dx
        jmp     1b
2:
.if ACPI
        mov     $ACPI_RESET_VALUE, %al
        mov     $ACPI_RESET, %dx
.else
        mov     $I8042_RESET_CPU, %al
        mov     $I8042_COMMAND, %dx
.endif
        out     %al, %dx
3:      pause
        jmp     3b
msg:    .asciz "resetting\n"
