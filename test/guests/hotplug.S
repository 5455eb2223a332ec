# A guest that handles CPU hotplug like Linux's \_SB.CPUS.CSCN, on bunvmm's hotplug controller.
# Every running vCPU loops forever: count (COUNTERS + 4 * APIC id), then for every possible CPU, under
# a spinlock in RAM (the AML mutex CPLK): select it (CSEL), read its status, and
#   - CRMV (being removed), for another CPU: eject it (ack CRMV, CEJ0) only once it holds nothing, i.e.
#     it is offline or never ran this loop (STATE 0 or 2). A CPU still running the loop (STATE 1) or
#     starting (3) is first asked to go offline (OFFREQ) and ejected on a later pass. Like Linux, which
#     takes a CPU offline before _EJ0: the VMM may stop an ejected CPU at any instruction, and one
#     stopped while holding the lock would stop every other CPU with it.
#   - CINS (being added), on the boot vCPU only: ack it and start it with INIT/SIPI.
# A vCPU asked to go offline marks itself offline, leaves the lock and halts. The boot vCPU first starts
# START_APS of the other boot vCPUs (default: all). A vCPU whose bit is set in HALT_MASK halts instead.
# Interrupts stay off (the GED interrupt cannot be taken on our nested, emulating test machines), so the
# guest polls.
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
.set STATE,             0xa000      # STATE + 4 * id, written under the lock:
.set STATE_IDLE,        0           #   not running the loop (never started, halted, or ejected)
.set STATE_SCANNING,    1
.set STATE_OFFLINE,     2           #   halted after an offline request: holds nothing
.set STATE_STARTING,    3           #   INIT/SIPI sent
.set OFFREQ,            0xa400      # OFFREQ + 4 * id: asked to go offline (written under the lock)
.set AP_STACKS_TOP,     0x6000      # each AP's stack: 64 bytes below AP_STACKS_TOP - 64 * id
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
        movl    $STATE_STARTING, STATE(,%esi,4)   # no AP runs the loop yet: no lock needed
        call    start_ap
        inc     %esi
        jmp     2b

scan:   mov     $1, %eax
        cpuid
        shr     $24, %ebx                   # EBX = own APIC id, kept for good
        mov     $HALT_MASK, %eax
        bt      %ebx, %eax
        jnc     1f
        movl    $STATE_OFFLINE, STATE(,%ebx,4)   # halts holding nothing: may be ejected at once
        jmp     halt
1:      call    lock
        movl    $STATE_SCANNING, STATE(,%ebx,4)
        movl    $0, OFFREQ(,%ebx,4)
        movl    $0, LOCK
next_round:
        incl    COUNTERS(,%ebx,4)
        xor     %ecx, %ecx                  # ECX = CPU being looked at
next_cpu:
        cmp     MAX_CPUS, %ecx
        jae     next_round
        call    lock
        cmpl    $0, OFFREQ(,%ebx,4)         # asked to go offline: do so before anything else
        jne     offline
        mov     %ecx, CSEL
        movb    STATUS, %al
        test    $CRMV, %al
        jz      5f
        cmp     %ecx, %ebx                  # being removed itself: leave it to another vCPU
        je      5f
        mov     STATE(,%ecx,4), %edx
        cmp     $STATE_SCANNING, %edx
        je      4f
        cmp     $STATE_STARTING, %edx
        je      4f
        movb    $CRMV, STATUS               # holds nothing: ack the removal and eject it
        movl    $STATE_IDLE, STATE(,%ecx,4)
        movb    $CEJ0, STATUS
        jmp     5f
4:      movl    $1, OFFREQ(,%ecx,4)         # running: ask it to go offline first
5:      test    %ebx, %ebx                  # inserts: the boot vCPU only
        jnz     6f
        test    $CINS, %al
        jz      6f
        movb    $CINS, STATUS               # ack the insert
        movl    $STATE_STARTING, STATE(,%ecx,4)
        movl    $0, OFFREQ(,%ecx,4)
        mov     %ecx, %esi
        call    start_ap
6:      movl    $0, LOCK                    # release
        inc     %ecx
        jmp     next_cpu

# lock: takes the spinlock. Clobbers EAX.
lock:   mov     $1, %eax
1:      xchg    %eax, LOCK
        test    %eax, %eax
        jz      2f
        pause
        mov     $1, %eax
        jmp     1b
2:      ret

offline:
        movl    $STATE_OFFLINE, STATE(,%ebx,4)
        movl    $0, LOCK
halt:   cli
        hlt
        jmp     halt

.include "smp.inc"
        AP_TRAMPOLINE ap_entry32
ap_entry32:
        mov     $1, %eax                    # a stack of its own: APs run concurrently and `call lock`
        cpuid
        shr     $24, %ebx
        shl     $6, %ebx
        mov     $AP_STACKS_TOP, %esp
        sub     %ebx, %esp
        jmp     scan
