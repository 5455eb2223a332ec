# Polls the GED notification register (interrupts cannot be taken on our test machines) and powers
# off when the power-button event arrives; prints "ready" first and "button" before powering off.
.include "platform.inc"
.set GED_BASE,          0xfe001000
.set GED_POWER_BUTTON,  0x02
.text
.code32
image_start:
        mov     $ready, %esi
        call    puts
poll:   mov     GED_BASE, %eax              # read-to-clear, 4 bytes
        test    $GED_POWER_BUTTON, %eax
        jz      poll
        mov     $button, %esi
        call    puts
        mov     $S5_SLEEP_VALUE, %al
        mov     $ACPI_SLEEP_CONTROL, %dx
        out     %al, %dx
1:      hlt
        jmp     1b
puts:   mov     $COM1, %dx
2:      lodsb
        test    %al, %al
        jz      3f
        out     %al, %dx
        jmp     2b
3:      ret
ready:  .asciz "ready\n"
button: .asciz "button\n"
