/**
 * What a guest-facing device may ask of the VMM. A device posts the request and returns at once; the
 * VMM thread carries it out later ([no-vcpu-waits-vcpu], and cloud-hypervisor #7798: reset paths never spin on a
 * vCPU waiting for KILL).
 */
export type VmRequest = "poweroff" | "reset";

/** Posts a request to the VMM thread; never blocks, never throws. */
export type VmRequestSink = (request: VmRequest, source: string) => void;
