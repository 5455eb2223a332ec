# Touches the last page of guest RAM, however large the RAM is (the 16 GiB test puts it near 17 GiB).
# A 32-bit guest cannot address physical memory above 4 GiB without paging that holds 64-bit physical
# addresses. This one turns on long mode but keeps running its 32-bit code segment (compatibility mode):
# 4-level paging, 2 MiB pages. Virtual [0, 1 GiB) stays identity mapped (the code, the stack, the
# results); virtual HIGH_WINDOW maps the last 2 MiB of RAM. (Legacy PAE paging would do as well on bare
# metal, but its PDPTE registers loaded at `mov %cr0` made the nested KVM of our build machines
# triple-fault; long mode has no PDPTE registers.)
# Then it copies the u32 the VMM left at (end of RAM - 8) to SEEN, writes its complement at
# (end of RAM - 4), sets DONE and halts. The test checks all three through GuestMemory.
.include "platform.inc"
.set PD_LOW,        0x1000        # page directory for virtual [0, 1 GiB): identity, 2 MiB pages
.set PD_HIGH,       0x2000        # page directory for virtual [1 GiB, 2 GiB): entry 0 = last 2 MiB of RAM
.set PDPT,          0x3000        # page-directory-pointer table: entries 0 and 1
.set PML4,          0x4000        # entry 0 = PDPT
.set SEEN,          0x9000        # u32: what the guest read at the end of RAM - 8
.set DONE,          0x9004        # u32: DONE_MAGIC once the guest has finished
.set DONE_MAGIC,    0x600df00d
.set HIGH_WINDOW,   0x40000000
.set LAST_PAGE,     HIGH_WINDOW + 0x1ff000
.set PAGE_2M,       0x83          # present, writable, page size (2 MiB)
.set TABLE,         0x3           # present, writable: an entry that points to the next table
.set CR4_PAE,       0x20
.set CR0_PG,        0x80000000
.set MSR_EFER,      0xc0000080
.set EFER_LME,      0x100
.set MMIO_HOLE_MIB, 3072          # RAM above 3 GiB continues at 4 GiB (src/arch/x86_64/layout.ts)
.set HOLE_MIB,      1024

.text
.code32
image_start:
        # ECX = guest RAM in MiB. EAX = number of the last 2 MiB frame of RAM.
        mov     %ecx, %eax
        cmp     $MMIO_HOLE_MIB, %eax
        jbe     1f
        add     $HOLE_MIB, %eax
1:      shr     $1, %eax
        dec     %eax
        # Its physical address is EAX << 21: low dword EAX << 21, high dword EAX >> 11.
        mov     %eax, %edx
        shr     $11, %edx
        shl     $21, %eax
        or      $PAGE_2M, %eax
        mov     %eax, PD_HIGH
        mov     %edx, PD_HIGH + 4

        xor     %esi, %esi                  # identity map [0, 1 GiB)
        mov     $PD_LOW, %edi
2:      mov     %esi, %eax
        shl     $21, %eax
        or      $PAGE_2M, %eax
        mov     %eax, (%edi)
        movl    $0, 4(%edi)
        add     $8, %edi
        inc     %esi
        cmp     $512, %esi
        jb      2b

        movl    $PD_LOW + TABLE, PDPT
        movl    $0, PDPT + 4
        movl    $PD_HIGH + TABLE, PDPT + 8
        movl    $0, PDPT + 12
        movl    $PDPT + TABLE, PML4
        movl    $0, PML4 + 4

        mov     $PML4, %eax
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
        mov     %eax, %cr0                  # long mode is active; CS is 32-bit: compatibility mode
        jmp     3f                          # identity mapped: execution continues at the next line
3:
        mov     LAST_PAGE + 0xff8, %eax
        mov     %eax, SEEN
        not     %eax
        mov     %eax, LAST_PAGE + 0xffc
        movl    $DONE_MAGIC, DONE
halt:
        cli
        hlt
        jmp     halt
