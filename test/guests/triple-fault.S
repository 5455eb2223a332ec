# Triple-faults on purpose: with an empty IDT, an invalid opcode (#UD) cannot be delivered (#GP), nor
# can that (#DF), so the CPU shuts down and KVM reports KVM_EXIT_SHUTDOWN.
.include "platform.inc"
.text
.code32
image_start:
        mov     $'T', %al
        mov     $COM1, %dx
        out     %al, %dx                    # proof of life before the fault
        lidt    empty_idt
        ud2
empty_idt:
        .word   0
        .long   0
