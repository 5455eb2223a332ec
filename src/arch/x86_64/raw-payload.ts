/**
 * bunvmm's raw payload format (docs/raw-payload.md): a flat image at RAW_LOAD_ADDRESS, entered on the
 * boot vCPU in flat 32-bit protected mode. Small enough to hand-assemble, so tests and the demo need
 * no kernel.
 */

import type { Regs } from "../../kvm/vcpu-fd.ts";
import type { GuestMemory } from "../../memory/guest-memory.ts";
import { MIB } from "../../numbers.ts";
import { initialRegs } from "./cpu-state.ts";
import { RAW_LOAD_ADDRESS, RAW_MAX_END, RAW_STACK_TOP } from "./layout.ts";

/** Largest raw image: it must end below the EBDA. */
export const RAW_MAX_SIZE = RAW_MAX_END - RAW_LOAD_ADDRESS;

/** Copies the image into guest RAM; the caller checked its size against RAW_MAX_SIZE. */
export function loadRawImage(memory: GuestMemory, image: Uint8Array): void {
  memory.write(RAW_LOAD_ADDRESS, image);
}

/** Boot vCPU registers at entry: EAX boot vCPUs, EBX max vCPUs, ECX RAM in MiB. */
export function rawEntryRegs(bootVcpus: number, maxVcpus: number, ramBytes: number): Regs {
  return initialRegs({
    rip: BigInt(RAW_LOAD_ADDRESS),
    rsp: BigInt(RAW_STACK_TOP),
    rax: BigInt(bootVcpus),
    rbx: BigInt(maxVcpus),
    rcx: BigInt(Math.floor(ramBytes / MIB)),
  });
}
