# QEMU's stand-in for test/guests/hotplug.S (QEMU has no bunvmm CPU hotplug controller): the boot vCPU
# starts all other boot vCPUs, then every vCPU loops forever: count (COUNTERS + 4 * APIC id), then one
# 32-bit store to an address in the 32-bit hole that nothing decodes (bench/exit-cost/guests/mmio.S's
# store, looped forever), so each iteration is one MMIO exit to the VMM. Raw payload entry contract
# (EAX = boot vCPUs); under QEMU through pvh-entry.S.
.include "platform.inc"
.set COUNTERS,      0x9000

.text
.code32
image_start:
        mov     %eax, %ebp                  # boot vCPUs
        call    lapic_enable
        mov     $1, %esi
1:      cmp     %ebp, %esi
        jae     spin
        call    start_ap
        inc     %esi
        jmp     1b

spin:   mov     $1, %eax
        cpuid
        shr     $24, %ebx                   # APIC id
        lea     COUNTERS(,%ebx,4), %edi
2:      incl    (%edi)
        movl    %eax, UNOWNED_MMIO
        jmp     2b

.include "smp.inc"
        AP_TRAMPOLINE spin
