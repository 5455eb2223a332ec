# Hostile guest: every boot vCPU (the boot vCPU starts the others) writes random values at random
# widths (1, 2 or 4 bytes) to random offsets of the CPU hotplug controller and the GED, and reads
# them back, forever; each vCPU counts its iterations at COUNTERS + 4 * APIC id. A xorshift32
# generator seeded from the APIC id makes every vCPU's sequence different and every run the same.
.include "platform.inc"
.set COUNTERS,          0x9000
.set CPU_HOTPLUG_BASE,  0xfe000000
.set GED_BASE,          0xfe001000
.text
.code32
image_start:
        mov     %eax, %ebp
        call    lapic_enable
        mov     $1, %esi
1:      cmp     %ebp, %esi
        jae     fuzz
        call    start_ap
        inc     %esi
        jmp     1b

fuzz:   mov     $1, %eax
        cpuid
        shr     $24, %ebx                   # EBX = APIC id
        lea     0x9e3779b9(%ebx), %esi      # ESI = xorshift32 state, never 0
next:   incl    COUNTERS(,%ebx,4)
        mov     %esi, %eax                  # xorshift32: x ^= x << 13; x ^= x >> 17; x ^= x << 5
        shl     $13, %eax
        xor     %eax, %esi
        mov     %esi, %eax
        shr     $17, %eax
        xor     %eax, %esi
        mov     %esi, %eax
        shl     $5, %eax
        xor     %eax, %esi
        mov     %esi, %edi
        and     $0xf, %edi                  # offset 0..15
        mov     $CPU_HOTPLUG_BASE, %eax
        test    $0x100, %esi
        jz      2f
        mov     $GED_BASE, %eax
2:      add     %eax, %edi                  # EDI = target address
        mov     %esi, %eax
        shr     $20, %eax                   # value
        mov     %esi, %ecx
        shr     $4, %ecx
        and     $3, %ecx                    # 0 byte, 1 word, 2 dword write, 3 dword read
        cmp     $0, %ecx
        jne     3f
        movb    %al, (%edi)
        jmp     next
3:      cmp     $1, %ecx
        jne     4f
        movw    %ax, (%edi)
        jmp     next
4:      cmp     $2, %ecx
        jne     5f
        movl    %eax, (%edi)
        jmp     next
5:      movl    (%edi), %eax
        jmp     next

.include "smp.inc"
        AP_TRAMPOLINE fuzz
