/*
 * The bunvmm pause model with cloud-hypervisor's #8092 lock scope put back (the hold-and-wait cycle
 * that issue reports): one `vcpu_states` mutex that
 *   - the VMM holds across the whole pause: lock; set PAUSE; kick; wait for every ack; unlock
 *     (main's `pause()` waits for `paused` under that lock, with no timeout), and
 *   - the CPU hotplug controller's MMIO handler takes, on the vCPU thread in the middle of KVM_RUN's exit,
 *     for every read or write of the status register (and for the eject).
 * Everything else is model/pause.pml unchanged. spin must report an invalid end state: the VMM holds the
 * lock and waits for vCPU X's ack, while X, inside its MMIO exit, waits for the lock.
 */
#define BROKEN_8092
#include "pause.pml"
