/**
 * The CPU state at the Linux 64-bit entry point (boot.rst "64-bit BOOT PROTOCOL"; Intel SDM Vol. 3A
 * §9.8.5 initializing IA-32e mode): long mode with paging on through the identity tables, the boot GDT
 * loaded, CS = __BOOT_CS (L = 1), DS/ES/SS (and FS/GS) = __BOOT_DS, interrupts off, RSI = zero page,
 * RIP = load address + 0x200. Pure functions over KVM's register structs: the builder applies them.
 */
import type { Regs, Sregs } from "../../kvm/vcpu-fd.ts";
import { STARTUP_64_OFFSET } from "./bzimage.ts";
import { BOOT_CS_SELECTOR, BOOT_DS_SELECTOR, CR0_ET, CR0_PE, CR0_PG, initialRegs } from "./cpu-state.ts";

export { CR0_PG };

import { BOOT_GDT_LIMIT, bootSegment } from "./gdt.ts";
import { BOOT_GDT_ADDRESS, BOOT_PML4_ADDRESS, ZERO_PAGE_ADDRESS } from "./layout.ts";

/** CR4.PAE: physical address extension, required for long mode. */
export const CR4_PAE = 1n << 5n;
/** IA32_EFER.LME (long mode enable) and LMA (long mode active; KVM wants it set with LME and PG). */
export const EFER_LME = 1n << 8n;
export const EFER_LMA = 1n << 10n;

/**
 * Long-mode segment and control registers, from the vCPU's current ones (TR, LDT and APIC base are
 * kept). CR0 is exactly PE | ET | PG, so caching is on (reset leaves CD and NW set); the IDT is empty:
 * interrupts are off until the kernel loads its own.
 */
export function longModeSregs(current: Sregs): Sregs {
  const code = bootSegment(BOOT_CS_SELECTOR);
  const data = bootSegment(BOOT_DS_SELECTOR);
  return {
    ...current,
    cs: code,
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    gdt: { base: BigInt(BOOT_GDT_ADDRESS), limit: BOOT_GDT_LIMIT },
    idt: { base: 0n, limit: 0 },
    cr0: CR0_PE | CR0_ET | CR0_PG,
    cr3: BigInt(BOOT_PML4_ADDRESS),
    cr4: CR4_PAE,
    efer: current.efer | EFER_LME | EFER_LMA,
  };
}

/** General registers at the 64-bit entry of a kernel loaded at `loadAddress`. */
export function linux64EntryRegs(loadAddress: number, zeroPage: number = ZERO_PAGE_ADDRESS): Regs {
  return initialRegs({ rip: BigInt(loadAddress + STARTUP_64_OFFSET), rsi: BigInt(zeroPage) });
}
