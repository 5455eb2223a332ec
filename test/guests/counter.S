# Every vCPU counts: the boot vCPU starts START_APS application processors (default: all other boot
# vCPUs), then each vCPU increments its own 32-bit counter at COUNTERS + 4 * APIC id forever.
# A vCPU whose bit is set in HALT_MASK halts (interrupts off) instead of counting. With PIO=1 each
# iteration also writes to an unowned port, so the vCPU exits to the VMM on every count.
# APs beyond START_APS stay waiting for INIT/SIPI. Tests read the counters from guest RAM.
.include "platform.inc"
.ifndef START_APS
.set START_APS, 255
.endif
.ifndef HALT_MASK
.set HALT_MASK, 0
.endif
.ifndef PIO
.set PIO, 0
.endif
.set COUNTERS,      0x9000
.set UNOWNED_PORT,  0x510

.text
.code32
image_start:
        mov     %eax, %ebp                  # boot vCPUs
        mov     $START_APS + 1, %eax
        cmp     %eax, %ebp
        jbe     1f
        mov     %eax, %ebp                  # EBP = 1 + APs to start
1:      call    lapic_enable
        mov     $1, %esi
2:      cmp     %ebp, %esi
        jae     count
        call    start_ap
        inc     %esi
        jmp     2b

count:
        mov     $1, %eax
        cpuid
        shr     $24, %ebx                   # APIC id
        mov     $HALT_MASK, %eax
        bt      %ebx, %eax
        jc      halt
        lea     COUNTERS(,%ebx,4), %edi
        mov     $UNOWNED_PORT, %dx
3:      incl    (%edi)
.if PIO
        out     %al, %dx
.endif
        jmp     3b
halt:
        cli
        hlt
        jmp     halt

.include "smp.inc"
        AP_TRAMPOLINE count
