# bunvmm's built-in demo guest (raw payload, docs/raw-payload.md).
# The boot vCPU greets, starts every other boot vCPU with INIT/SIPI/SIPI through the in-kernel LAPIC,
# one at a time; each greets with its APIC id (from CPUID); then the boot vCPU powers the VM off.
# Only instructions a nested KVM that emulates guest code can run: integer ops, port I/O, MMIO, pause, hlt.
.include "platform.inc"

.set AP_DONE,           0x8000      # an AP writes its APIC id + 1 here when it has greeted
.set AP_STACK_TOP,      0x7000      # APs run one at a time, so they share one stack
.set AP_WAIT_LOOPS,     4000000     # bound on waiting for one AP (several seconds emulated)

.text
.code32
image_start:
bsp_entry:
        mov     %eax, %ebp                  # EAX = boot vCPUs (raw entry contract)
        call    greet
        call    lapic_enable
        mov     $1, %esi                    # ESI = next APIC id to start
next_ap:
        cmp     %ebp, %esi
        jae     all_up
        movl    $0, AP_DONE
        call    start_ap
        mov     $AP_WAIT_LOOPS, %ecx
        lea     1(%esi), %edx
wait_ap:
        cmp     %edx, AP_DONE
        je      ap_up
        pause
        dec     %ecx
        jnz     wait_ap
        mov     $msg_silent, %edi           # this AP never answered: say so, go on
        call    puts
        mov     %esi, %eax
        call    putdec
        mov     $msg_nl, %edi
        call    puts
ap_up:
        inc     %esi
        jmp     next_ap
all_up:
        mov     $msg_all, %edi
        call    puts
        mov     %ebp, %eax
        call    putdec
        mov     $msg_off, %edi
        call    puts
        mov     $S5_SLEEP_VALUE, %al
        mov     $ACPI_SLEEP_CONTROL, %dx
        out     %al, %dx
halt:
        hlt
        jmp     halt

# greet: prints "bunvmm demo: hello from the vCPU with APIC id N"; leaves the id in EBX.
greet:
        mov     $1, %eax
        cpuid
        shr     $24, %ebx                   # CPUID.1:EBX[31:24] = initial APIC id
        mov     $msg_hello, %edi
        call    puts
        mov     %ebx, %eax
        call    putdec
        mov     $msg_nl, %edi
        call    puts
        ret

# puts: writes the NUL-terminated string at EDI to COM1. Clobbers AL, DX, EDI.
puts:
        mov     $COM1, %dx
1:      mov     (%edi), %al
        test    %al, %al
        jz      2f
        out     %al, %dx
        inc     %edi
        jmp     1b
2:      ret

# putdec: writes EAX in decimal to COM1. Clobbers EAX, ECX, EDX.
putdec:
        push    %ebx
        xor     %ecx, %ecx                  # digit count
        mov     $10, %ebx
1:      xor     %edx, %edx
        div     %ebx
        push    %edx
        inc     %ecx
        test    %eax, %eax
        jnz     1b
        mov     $COM1, %dx
2:      pop     %eax
        add     $'0', %al
        out     %al, %dx
        loop    2b
        pop     %ebx
        ret

# An AP, after the trampoline: greet, report, halt for good.
ap_main:
        mov     $AP_STACK_TOP, %esp
        call    greet
        lea     1(%ebx), %eax
        mov     %eax, AP_DONE
        jmp     halt

msg_hello:  .asciz "bunvmm demo: hello from the vCPU with APIC id "
msg_all:    .asciz "bunvmm demo: all "
msg_off:    .asciz " vCPUs said hello; powering off\n"
msg_silent: .asciz "bunvmm demo: no answer from APIC id "
msg_nl:     .asciz "\n"

.include "smp.inc"
        AP_TRAMPOLINE ap_main
