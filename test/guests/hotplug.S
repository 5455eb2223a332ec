# A guest that handles CPU hotplug like Linux's \_SB.CPUS.CSCN, on bunvmm's hotplug controller.
# Every running vCPU loops forever: count (COUNTERS + 4 * APIC id), then for every possible CPU, under
# a spinlock in RAM (the AML mutex CPLK): select it (CSEL), read its status, and
#   - CRMV (being removed): ack it and eject it (CEJ0), unless it is this vCPU: then leave the bit for
#     another vCPU (Linux ejects a CPU only after taking it offline, from another CPU);
#   - CINS (being added), on the boot vCPU only: ack it and start it with INIT/SIPI.
# An ejected vCPU may run on for a moment until the VMM stops it; like an offline CPU it must not
# take the lock then, so the ejector marks it EJECTED first and it halts when it sees the mark.
# The boot vCPU first starts START_APS of the other boot vCPUs (default: all). A vCPU whose bit is set
# in HALT_MASK halts instead. Interrupts stay off (the GED interrupt cannot be taken on our test
# machines, PLATFORM.md), so the guest polls.
.include "platform.inc"
.ifndef START_APS
.set START_APS, 255
.endif
.ifndef HALT_MASK
.set HALT_MASK, 0
.endif
.set COUNTERS,          0x9000
.set MAX_CPUS,          0x8800      # the boot vCPU stores max vCPUs here for everyone
.set LOCK,              0x8900
.set EJECTED,           0x8a00      # EJECTED + 4 * id: set (under the lock) by the vCPU that ejects it
.set CPU_HOTPLUG_BASE,  0xfe000000
.set CSEL,              CPU_HOTPLUG_BASE
.set STATUS,            CPU_HOTPLUG_BASE + 4
.set CINS,              0x02
.set CRMV,              0x04
.set CEJ0,              0x08

.text
.code32
image_start:
        mov     %ebx, MAX_CPUS              # EBX = max vCPUs (raw entry contract)
        mov     %eax, %ebp                  # EAX = boot vCPUs
        mov     $START_APS + 1, %eax
        cmp     %eax, %ebp
        jbe     1f
        mov     %eax, %ebp
1:      call    lapic_enable
        mov     $1, %esi
2:      cmp     %ebp, %esi
        jae     scan
        call    start_ap
        inc     %esi
        jmp     2b

scan:   mov     $1, %eax
        cpuid
        shr     $24, %ebx                   # EBX = own APIC id, kept for good
        mov     $HALT_MASK, %eax
        bt      %ebx, %eax
        jc      halt
next_round:
        incl    COUNTERS(,%ebx,4)
        xor     %ecx, %ecx                  # ECX = CPU being looked at
next_cpu:
        cmp     MAX_CPUS, %ecx
        jae     next_round
        mov     $1, %eax                    # acquire the lock
3:      xchg    %eax, LOCK
        test    %eax, %eax
        jz      4f
        pause
        mov     $1, %eax
        jmp     3b
4:      cmpl    $0, EJECTED(,%ebx,4)        # ejected while running: a real OS would be offline
        jne     gone                        # by now, so leave the lock and stop like one
        mov     %ecx, CSEL
        movb    STATUS, %al
        test    $CRMV, %al
        jz      5f
        cmp     %ecx, %ebx                  # being removed itself: leave it to another vCPU
        je      5f
        movb    $CRMV, STATUS               # ack the removal
        movl    $1, EJECTED(,%ecx,4)
        movb    $CEJ0, STATUS               # eject it
5:      test    %ebx, %ebx                  # inserts: the boot vCPU only
        jnz     6f
        test    $CINS, %al
        jz      6f
        movb    $CINS, STATUS               # ack the insert
        movl    $0, EJECTED(,%ecx,4)
        mov     %ecx, %esi
        call    start_ap
6:      movl    $0, LOCK                    # release
        inc     %ecx
        jmp     next_cpu

gone:   movl    $0, LOCK
halt:   cli
        hlt
        jmp     halt

.include "smp.inc"
        AP_TRAMPOLINE ap_entry32
ap_entry32:
        mov     $0x6000, %esp               # start_ap is only called by the boot vCPU; APs need no stack
        jmp     scan
