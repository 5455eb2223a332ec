# Writes one word to DIRTY_GPA and nothing else in RAM (paging off, no stack use), then DONE_PORT:
# test/kvm/eventfd-routes.test.ts checks KVM_GET_DIRTY_LOG marks exactly that page among its neighbours.
.include "platform.inc"
.ifndef DIRTY_GPA
.set DIRTY_GPA,             0x80000
.endif
.set DONE_PORT,             0x500

.text
.code32
image_start:
        movl    $0x5a5a5a5a, DIRTY_GPA
        mov     $DONE_PORT, %dx
        out     %al, %dx
        hlt
