# 8-byte MMIO from a 64-bit guest: enters long mode itself (identity-mapped 2 MiB pages for the first
# 2 MiB and for 0xc0000000-0xffffffff), then
#   1. movq  MMIO64_WRITE_VALUE -> [DEVICE64]            (a device with read64/write64)
#   2. movq  [DEVICE64] -> RESULTS + 0                    (the device answers MMIO64_READ_VALUE)
#   3. movq  MMIO64_WRITE_VALUE -> [DEVICE32]            (a device without: two 4-byte writes)
#   4. movq  [DEVICE32] -> RESULTS + 8
#   5. movq  [UNOWNED] -> RESULTS + 16                    (nobody there: all ones, 64 bits)
#   6. movl  [DEVICE64 + 8] -> RESULTS + 24               (a 4-byte read still takes the narrow path)
# then writes DONE_PORT. The test (test/vcpu/mmio64.test.ts) owns the devices and checks both sides.
.include "platform.inc"
.set DEVICE64,              0xd0000000
.set DEVICE32,              0xd0001000
.set UNOWNED,               0xd0002000
.set RESULTS,               0x9000
.set DONE_PORT,             0x500
.set MMIO64_WRITE_VALUE,    0x1122334455667788
.set MSR_EFER,              0xc0000080
.set EFER_LME,              0x100
.set CR4_PAE,               0x20
.set CR0_PG,                0x80000000
.set PTE_PRESENT_RW,        0x3
.set PDE_2M_PAGE,           0x83      # present, writable, page size
.set PAGE_2M,               0x200000
.set GDT_CODE64,            0x08

.text
.code32
image_start:
        mov     $pml4, %eax
        mov     %eax, %cr3
        mov     %cr4, %eax
        or      $CR4_PAE, %eax
        mov     %eax, %cr4
        mov     $MSR_EFER, %ecx
        rdmsr
        or      $EFER_LME, %eax
        wrmsr
        mov     %cr0, %eax
        or      $CR0_PG, %eax
        mov     %eax, %cr0
        lgdt    gdt_pointer
        ljmp    $GDT_CODE64, $long_mode

.code64
long_mode:
        movabs  $MMIO64_WRITE_VALUE, %rax
        mov     $DEVICE64, %edi
        mov     %rax, (%rdi)
        mov     (%rdi), %rbx
        mov     %rbx, RESULTS
        mov     $DEVICE32, %edi
        mov     %rax, (%rdi)
        mov     (%rdi), %rbx
        mov     %rbx, RESULTS + 8
        mov     $UNOWNED, %edi
        mov     (%rdi), %rbx
        mov     %rbx, RESULTS + 16
        mov     $DEVICE64, %edi
        mov     8(%rdi), %ebx
        mov     %ebx, RESULTS + 24
        mov     $DONE_PORT, %dx
        out     %al, %dx
        hlt

        .balign 8
gdt:
        .quad   0
        .quad   0x00af9b000000ffff    # 64-bit code: G, L, P, S, execute/read, accessed
gdt_end:
gdt_pointer:
        .word   gdt_end - gdt - 1
        .long   gdt

        .balign 4096
pml4:
        .long   pdpt + PTE_PRESENT_RW, 0
        .fill   511, 8, 0
pdpt:
        .long   pd_low + PTE_PRESENT_RW, 0
        .fill   2, 8, 0
        .long   pd_high + PTE_PRESENT_RW, 0
        .fill   508, 8, 0
pd_low:                                 # 0 - 2 MiB
        .long   PDE_2M_PAGE, 0
        .fill   511, 8, 0
pd_high:                                # 0xc0000000 - 0xffffffff
        .set    page, 0xc0000000
        .rept   512
        .long   page + PDE_2M_PAGE, 0
        .set    page, page + PAGE_2M
        .endr
