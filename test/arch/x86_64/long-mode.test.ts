/** The 64-bit bzImage entry state (pure), checked field by field. */
import { describe, expect, test } from "bun:test";
import { RFLAGS_RESERVED } from "../../../src/arch/x86_64/cpu-state.ts";
import { bootSegment } from "../../../src/arch/x86_64/gdt.ts";
import {
  CR4_PAE,
  EFER_LMA,
  EFER_LME,
  linux64EntryRegs,
  longModeSregs,
} from "../../../src/arch/x86_64/long-mode.ts";
import { resetSregs } from "../../helpers/reset-sregs.ts";

describe("longModeSregs()", () => {
  const s = longModeSregs(resetSregs());

  test("paging on in long mode: CR0 = PE|ET|PG, CR4 = PAE, EFER = LME|LMA, CR3 = the PML4", () => {
    expect(s.cr0).toBe(0x8000_0011n);
    expect(s.cr4).toBe(CR4_PAE);
    expect(s.efer).toBe(EFER_LME | EFER_LMA);
    expect(s.cr3).toBe(0x9000n);
  });

  test("CS = __BOOT_CS (L=1), data segments = __BOOT_DS, GDTR = the boot GDT, IDTR empty", () => {
    expect(s.cs).toEqual(bootSegment(0x10));
    expect(s.cs.l).toBe(1);
    for (const d of [s.ds, s.es, s.fs, s.gs, s.ss]) expect(d).toEqual(bootSegment(0x18));
    expect(s.gdt).toEqual({ base: 0x500n, limit: 31 });
    expect(s.idt).toEqual({ base: 0n, limit: 0 });
  });

  test("keeps TR, LDT and the APIC base from the vCPU", () => {
    const reset = resetSregs();
    expect([s.tr, s.ldt, s.apic_base]).toEqual([reset.tr, reset.ldt, reset.apic_base]);
  });
});

describe("linux64EntryRegs()", () => {
  test("RIP = load + 0x200, RSI = zero page, only the reserved RFLAGS bit", () => {
    const r = linux64EntryRegs(0x100_0000);
    expect([r.rip, r.rsi, r.rflags, r.rsp, r.rbx]).toEqual([0x100_0200n, 0x7000n, RFLAGS_RESERVED, 0n, 0n]);
  });
});
