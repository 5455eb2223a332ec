# Rings doorbells KVM_IOEVENTFD can catch, for test/kvm/eventfd-routes.test.ts:
#   round 1: a 4-byte write to DOORBELL_ANY, MATCH_VALUE and then MATCH_VALUE + 1 to DOORBELL_MATCH, a
#            byte to the port PIO_DOORBELL; then DONE_PORT
#   round 2: (the test has deassigned the MMIO doorbells) the same two MMIO writes again; then DONE_PORT
.include "platform.inc"
.set DOORBELL_ANY,          0xd0000000
.set DOORBELL_MATCH,        0xd0000010
.set PIO_DOORBELL,          0x520
.set MATCH_VALUE,           7
.set DONE_PORT,             0x500

.text
.code32
image_start:
        movl    $1, DOORBELL_ANY
        movl    $MATCH_VALUE, DOORBELL_MATCH
        movl    $MATCH_VALUE + 1, DOORBELL_MATCH
        mov     $PIO_DOORBELL, %dx
        mov     $1, %al
        out     %al, %dx
        mov     $DONE_PORT, %dx
        out     %al, %dx
        movl    $1, DOORBELL_ANY
        movl    $MATCH_VALUE, DOORBELL_MATCH
        mov     $DONE_PORT, %dx
        out     %al, %dx
        hlt
