# Appended to a raw test guest (assembled in the same `as` run, after it) so that QEMU can boot it as
# a PVH ELF (-M microvm -kernel): the PVH entry note, and an entry stub that sets up what bunvmm's raw
# payload contract (docs/raw-payload.md) gives the guest and PVH does not: EAX = boot vCPUs,
# EBX = max vCPUs (both VCPUS, an assembler symbol), a stack below the image at RAW_STACK_TOP.
# PVH enters in the same state as the raw payload otherwise: 32-bit protected mode, flat segments,
# paging and interrupts off. The guest's own code and its AP trampoline stay where the raw image has
# them (image_start at 0x10000, guest.ld), so its APs start exactly as under bunvmm.
.ifndef VCPUS
.error "VCPUS must be defined (--defsym VCPUS=N)"
.endif

        .section .text.pvh, "ax"
        .code32
pvh_entry:
        mov     $0x10000, %esp              # RAW_STACK_TOP
        mov     $VCPUS, %eax
        mov     $VCPUS, %ebx
        jmp     image_start

        # XEN_ELFNOTE_PHYS32_ENTRY (type 18) in a note named "Xen".
        .pushsection .note.Xen, "a", @note
        .balign 4
        .long   4                           # namesz ("Xen\0")
        .long   4                           # descsz (32-bit entry address)
        .long   18                          # XEN_ELFNOTE_PHYS32_ENTRY
        .asciz  "Xen"
        .long   pvh_entry
        .popsection
