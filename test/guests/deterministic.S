# A deterministic computation over guest RAM, long enough to be snapshotted in the middle: STEPS steps
# of ITERATIONS iterations of xorshift32, each iteration reading and rewriting one word of a 256 KiB
# table at BUFFER (so the result depends on RAM as well as on the registers). After each step it prints
# "step NN sum XXXXXXXX"; at the end "result XXXXXXXX" and it powers off. The same image always prints
# the same lines, however it is paused, snapshotted and restored in between.
.include "platform.inc"
.ifndef STEPS
.set STEPS, 16
.endif
.ifndef ITERATIONS
.set ITERATIONS, 0x4000
.endif
.set BUFFER,        0x100000
.set TABLE_MASK,    0xffff                  # 64 Ki words

.text
.code32
image_start:
        mov     $0x2545f491, %ebx           # EBX = xorshift state
        xor     %esi, %esi                  # ESI = running sum
        xor     %edi, %edi                  # EDI = step number
step:
        mov     $ITERATIONS, %ecx
1:      mov     %ebx, %eax                  # x ^= x << 13; x ^= x >> 17; x ^= x << 5
        shl     $13, %eax
        xor     %eax, %ebx
        mov     %ebx, %eax
        shr     $17, %eax
        xor     %eax, %ebx
        mov     %ebx, %eax
        shl     $5, %eax
        xor     %eax, %ebx
        mov     %ebx, %edx                  # a table word chosen by the state
        and     $TABLE_MASK, %edx
        add     BUFFER(,%edx,4), %esi       # sum += table[i]
        add     %ebx, %esi                  # sum += x
        mov     %esi, BUFFER(,%edx,4)       # table[i] = sum
        loop    1b
        inc     %edi
        mov     $msg_step, %ebp
        call    puts
        mov     %edi, %eax
        call    put_dec2
        mov     $msg_sum, %ebp
        call    puts
        mov     %esi, %eax
        call    put_hex
        mov     $'\n', %al
        call    putc
        cmp     $STEPS, %edi
        jb      step
        mov     $msg_result, %ebp
        call    puts
        mov     %esi, %eax
        call    put_hex
        mov     $'\n', %al
        call    putc
        mov     $S5_SLEEP_VALUE, %al
        mov     $ACPI_SLEEP_CONTROL, %dx
        out     %al, %dx
2:      hlt
        jmp     2b

# putc: AL to COM1.
putc:
        mov     $COM1, %dx
        out     %al, %dx
        ret

# puts: the NUL-terminated string at EBP.
puts:
        mov     (%ebp), %al
        test    %al, %al
        jz      1f
        call    putc
        inc     %ebp
        jmp     puts
1:      ret

# put_hex: EAX as 8 hex digits (clobbers EAX, ECX, EDX, EBP).
put_hex:
        mov     %eax, %ebp
        mov     $8, %ecx
1:      rol     $4, %ebp
        mov     %ebp, %eax
        and     $0xf, %eax
        mov     hex_digits(%eax), %al
        call    putc
        loop    1b
        ret

# put_dec2: EAX (0-99) as two decimal digits (clobbers EAX, EDX).
put_dec2:
        push    %ecx
        xor     %edx, %edx
        mov     $10, %ecx
        div     %ecx
        push    %edx
        add     $'0', %al
        call    putc
        pop     %eax
        add     $'0', %al
        call    putc
        pop     %ecx
        ret

hex_digits:     .ascii "0123456789abcdef"
msg_step:       .asciz "step "
msg_sum:        .asciz " sum "
msg_result:     .asciz "result "
