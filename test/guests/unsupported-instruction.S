# Executes an x87 instruction (fldz; fninit happens to be emulated), which the emulated guests of our test machines cannot run
# (nested KVM emulates guest code there): KVM reports KVM_EXIT_INTERNAL_ERROR with the emulation-failure suberror.
.include "platform.inc"
.text
.code32
image_start:
        mov     $'U', %al
        mov     $COM1, %dx
        out     %al, %dx
        fldz                                # x87: load +0.0
        hlt
