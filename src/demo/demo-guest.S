# bunvmm's built-in demo guest (raw payload, docs/raw-payload.md).
# The boot vCPU greets, starts every other boot vCPU with INIT/SIPI/SIPI through the in-kernel LAPIC,
# one at a time; each greets with its APIC id (from CPUID); then the boot vCPU powers the VM off.
# Only instructions the emulated guests of PLATFORM.md can run: integer ops, port I/O, MMIO, pause, hlt.
.include "platform.inc"

.set AP_ENTRY,          RAW_LOAD_ADDRESS + 0x1000   # the SIPI vector must name a 4 KiB page
.set SIPI_VECTOR,       AP_ENTRY >> 12
.set AP_DONE,           0x8000      # an AP writes its APIC id + 1 here when it has greeted
.set AP_STACK_TOP,      0x7000      # APs run one at a time, so they share one stack
.set IPI_DELAY_LOOPS,   2000        # "short delay" between INIT and SIPI (~1 ms emulated)
.set AP_WAIT_LOOPS,     4000000     # bound on waiting for one AP (several seconds emulated)

.text
.code32
.globl bsp_entry
bsp_entry:
        mov     %eax, %ebp                  # EAX = boot vCPUs (raw entry contract)
        call    greet
        # software-enable the local APIC so it sends IPIs
        mov     LAPIC_BASE + LAPIC_SVR, %eax
        or      $LAPIC_SVR_ENABLE, %eax
        mov     %eax, LAPIC_BASE + LAPIC_SVR
        mov     $1, %esi                    # ESI = next APIC id to start
next_ap:
        cmp     %ebp, %esi
        jae     all_up
        movl    $0, AP_DONE
        mov     %esi, %eax
        shl     $24, %eax                   # destination APIC id in ICR bits 56..63
        mov     %eax, LAPIC_BASE + LAPIC_ICR_HIGH
        movl    $ICR_INIT_ASSERT, LAPIC_BASE + LAPIC_ICR_LOW
        call    delay
        movl    $ICR_INIT_DEASSERT, LAPIC_BASE + LAPIC_ICR_LOW
        call    delay
        mov     %eax, LAPIC_BASE + LAPIC_ICR_HIGH
        movl    $(ICR_STARTUP | SIPI_VECTOR), LAPIC_BASE + LAPIC_ICR_LOW
        call    delay
        mov     %eax, LAPIC_BASE + LAPIC_ICR_HIGH
        movl    $(ICR_STARTUP | SIPI_VECTOR), LAPIC_BASE + LAPIC_ICR_LOW
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

# greet: prints "bunvmm demo: hello from the vCPU with APIC id N". Clobbers EAX-EDX, EDI.
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

# putdec: writes EAX (0..999) in decimal to COM1. Clobbers EAX, ECX, EDX.
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

# delay: spins IPI_DELAY_LOOPS times. Clobbers nothing.
delay:
        push    %ecx
        mov     $IPI_DELAY_LOOPS, %ecx
1:      pause
        loop    1b
        pop     %ecx
        ret

# AP path, after the trampoline: greet, report, halt for good.
ap_main:
        mov     $BOOT_DS, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $AP_STACK_TOP, %esp
        call    greet
        mov     %ebx, %eax                  # greet left the APIC id in EBX
        inc     %eax
        mov     %eax, AP_DONE
        jmp     halt

msg_hello:  .asciz "bunvmm demo: hello from the vCPU with APIC id "
msg_all:    .asciz "bunvmm demo: all "
msg_off:    .asciz " vCPUs said hello; powering off\n"
msg_silent: .asciz "bunvmm demo: no answer from APIC id "
msg_nl:     .asciz "\n"

        .p2align 3
gdt:    .quad   0                           # null descriptor
        .quad   0                           # unused (0x08)
        .quad   0x00cf9b000000ffff          # 0x10: flat 4 GiB code, 32-bit, execute/read
        .quad   0x00cf93000000ffff          # 0x18: flat 4 GiB data, read/write
gdt_end:
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt

# The AP trampoline: a SIPI starts an AP here in real mode with CS = AP_ENTRY >> 4, IP = 0.
        .org    AP_ENTRY - RAW_LOAD_ADDRESS
.code16
ap_entry:
        cli
        mov     $(RAW_LOAD_ADDRESS >> 4), %ax
        mov     %ax, %ds                    # DS:offset reaches the image
        lgdtl   gdt_desc - bsp_entry            # offset from the image base: no relocation
        mov     %cr0, %eax
        or      $1, %eax                    # CR0.PE
        mov     %eax, %cr0
        ljmpl   $BOOT_CS, $ap_main
