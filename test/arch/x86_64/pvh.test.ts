/** PVH: start-info layouts, the entry note of the real vmlinux, segment loading and entry state. */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { RFLAGS_RESERVED } from "../../../src/arch/x86_64/cpu-state.ts";
import { E820_RAM, e820Table } from "../../../src/arch/x86_64/e820.ts";
import { PT_LOAD, parseElf64 } from "../../../src/arch/x86_64/elf.ts";
import { PVH_MEMMAP_ADDRESS, PVH_MODLIST_ADDRESS, ramRanges } from "../../../src/arch/x86_64/layout.ts";
import {
  buildStartInfo,
  HVM_MEMMAP_TABLE_ENTRY_LAYOUT,
  HVM_MODLIST_ENTRY_LAYOUT,
  HVM_START_INFO_LAYOUT,
  loadElfSegments,
  pvhEntryPoint,
  pvhEntryRegs,
  pvhEntrySregs,
  XEN_ELFNOTE_PHYS32_ENTRY,
  XEN_HVM_START_MAGIC_VALUE,
} from "../../../src/arch/x86_64/pvh.ts";
import { getField, viewOf } from "../../../src/arch/x86_64/struct-layout.ts";
import { GuestMemory } from "../../../src/memory/guest-memory.ts";
import { MIB } from "../../../src/numbers.ts";
import { reason } from "../../helpers/boot-error-reason.ts";
import { cLayoutMismatches } from "../../helpers/c-layout.ts";
import { craftElf } from "../../helpers/crafted-kernels.ts";
import { debianKernel } from "../../helpers/debian-kernel.ts";
import { resetSregs } from "../../helpers/reset-sregs.ts";

/** The structs as xen/include/public/arch-x86/hvm/start_info.h declares them (fields and types). */
const START_INFO_H = `
#include <stdint.h>
#define XEN_HVM_START_MAGIC_VALUE 0x336ec578
#define XEN_ELFNOTE_PHYS32_ENTRY 18
struct hvm_start_info {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
struct hvm_modlist_entry {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
};
struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
};`;

describe("hvm_start_info layouts", () => {
  test("match a C declaration of the Xen header's fields", () => {
    const mismatches = cLayoutMismatches({
      prelude: [START_INFO_H],
      layouts: [HVM_START_INFO_LAYOUT, HVM_MODLIST_ENTRY_LAYOUT, HVM_MEMMAP_TABLE_ENTRY_LAYOUT],
      constants: { XEN_HVM_START_MAGIC_VALUE, XEN_ELFNOTE_PHYS32_ENTRY },
    });
    expect(mismatches).toEqual([]);
  });

  test("have the sizes the header states: 56 (version 1), 32 and 24 bytes", () => {
    expect([
      HVM_START_INFO_LAYOUT.size,
      HVM_MODLIST_ENTRY_LAYOUT.size,
      HVM_MEMMAP_TABLE_ENTRY_LAYOUT.size,
    ]).toEqual([56, 32, 24]);
  });
});

describe("pvhEntryPoint()", () => {
  test("finds the 32-bit entry of the Debian vmlinux inside its first PT_LOAD segment", () => {
    const elf = parseElf64(readFileSync(debianKernel().vmlinuxPath));
    const entry = pvhEntryPoint(elf);
    const text = elf.segments.find((s) => s.type === PT_LOAD)!;
    expect(entry).toBeGreaterThan(text.paddr);
    expect(entry).toBeLessThan(text.paddr + text.filesz);
  });

  test("reads a 4-byte descriptor as well as an 8-byte one", () => {
    expect(pvhEntryPoint(parseElf64(craftElf({ pvhEntry: 0x100_0010 })))).toBe(0x100_0010);
    const elf = parseElf64(craftElf());
    const note = { ...elf.notes[0]!, desc: new Uint8Array([0x20, 0, 0, 1]) };
    expect(pvhEntryPoint({ ...elf, notes: [note] })).toBe(0x100_0020);
  });

  test("refuses an ELF without the note, naming CONFIG_PVH", () => {
    expect(reason(() => pvhEntryPoint(parseElf64(craftElf({ pvhEntry: null }))))).toBe(
      "ELF has no XEN_ELFNOTE_PHYS32_ENTRY note: this kernel was built without CONFIG_PVH",
    );
  });

  test("refuses an entry above 4 GiB", () => {
    expect(reason(() => pvhEntryPoint(parseElf64(craftElf({ pvhEntry: 2 ** 32 }))))).toBe(
      "the PVH entry point 0x100000000 is not a 32-bit address",
    );
  });
});

describe("loadElfSegments()", () => {
  test("copies file bytes to p_paddr and zeroes up to p_memsz", () => {
    const mem = GuestMemory.allocate(ramRanges(32 * MIB));
    try {
      mem.slice(0x100_0000, 0x200).fill(0xcc);
      const elf = parseElf64(craftElf({ code: new Uint8Array([1, 2, 3, 4]), bss: 0x100 }));
      expect(loadElfSegments(mem, elf, 32 * MIB)).toEqual({ start: 0x100_0000, end: 0x100_0104 });
      expect([...mem.read(0x100_0000, 6)]).toEqual([1, 2, 3, 4, 0, 0]);
      expect(mem.read(0x100_0004, 0x100).every((b) => b === 0)).toBe(true);
      expect(mem.read(0x100_0104, 1)[0]).toBe(0xcc); // nothing past p_memsz
    } finally {
      mem.close();
    }
  });

  test("refuses the Debian vmlinux in 32 MiB, naming the RAM that would do", () => {
    const elf = parseElf64(readFileSync(debianKernel().vmlinuxPath));
    const mem = GuestMemory.allocate(ramRanges(32 * MIB));
    try {
      expect(reason(() => loadElfSegments(mem, elf, 32 * MIB))).toMatch(
        /^segment \d needs guest RAM \[0x[0-9a-f]+, 0x[0-9a-f]+\) but RAM below 4 GiB ends at 0x2000000: give the VM at least \d+ MiB$/,
      );
    } finally {
      mem.close();
    }
  });

  test("refuses segments below 1 MiB and ELFs with nothing to load", () => {
    const mem = GuestMemory.allocate(ramRanges(16 * MIB));
    try {
      expect(reason(() => loadElfSegments(mem, parseElf64(craftElf({ paddr: 0x8000 })), 16 * MIB))).toBe(
        "segment 0 loads at 0x8000, below 1 MiB where bunvmm keeps the boot structures",
      );
      expect(
        reason(() => loadElfSegments(mem, parseElf64(craftElf({ code: new Uint8Array(0) })), 16 * MIB)),
      ).toBe("ELF has no PT_LOAD segment: nothing to load");
    } finally {
      mem.close();
    }
  });
});

describe("buildStartInfo()", () => {
  test("writes magic, version 1, command line, RSDP, one module and the memory map", () => {
    const memmap = e820Table(256 * MIB);
    const blobs = buildStartInfo({
      cmdlineAddress: 0x20000,
      initramfs: { address: 0xff0_0000, size: 0x1234 },
      rsdpAddress: 0xe0000,
      memmap,
    });
    const I = HVM_START_INFO_LAYOUT.fields;
    const v = viewOf(blobs.startInfo);
    expect(blobs.startInfo.length).toBe(56);
    expect(getField(v, 0, I.magic)).toBe(0x336e_c578);
    expect(getField(v, 0, I.version)).toBe(1);
    expect(getField(v, 0, I.flags)).toBe(0);
    expect(getField(v, 0, I.cmdline_paddr)).toBe(0x20000);
    expect(getField(v, 0, I.rsdp_paddr)).toBe(0xe0000);
    expect(getField(v, 0, I.nr_modules)).toBe(1);
    expect(getField(v, 0, I.modlist_paddr)).toBe(PVH_MODLIST_ADDRESS);
    expect(getField(v, 0, I.memmap_paddr)).toBe(PVH_MEMMAP_ADDRESS);
    expect(getField(v, 0, I.memmap_entries)).toBe(memmap.length);
    const M = HVM_MODLIST_ENTRY_LAYOUT.fields;
    const mv = viewOf(blobs.modlist);
    expect([getField(mv, 0, M.paddr), getField(mv, 0, M.size), getField(mv, 0, M.cmdline_paddr)]).toEqual([
      0xff0_0000, 0x1234, 0,
    ]);
    const E = HVM_MEMMAP_TABLE_ENTRY_LAYOUT;
    const ev = viewOf(blobs.memmap);
    const read = memmap.map((_, i) => ({
      addr: getField(ev, i * E.size, E.fields.addr),
      size: getField(ev, i * E.size, E.fields.size),
      type: getField(ev, i * E.size, E.fields.type),
    }));
    expect(read).toEqual(memmap);
  });

  test("without an initramfs there are no modules", () => {
    const blobs = buildStartInfo({ cmdlineAddress: 0x20000, memmap: [] });
    const I = HVM_START_INFO_LAYOUT.fields;
    expect(getField(viewOf(blobs.startInfo), 0, I.nr_modules)).toBe(0);
    expect(getField(viewOf(blobs.startInfo), 0, I.modlist_paddr)).toBe(0);
    expect(blobs.modlist.length).toBe(0);
  });

  test("refuses a memory map larger than its area", () => {
    const memmap = Array.from({ length: 129 }, (_, i) => ({ addr: i << 12, size: 4096, type: E820_RAM }));
    expect(reason(() => buildStartInfo({ cmdlineAddress: 0, memmap }))).toBe(
      "the memory map has 129 entries; the PVH memmap area holds 128",
    );
  });
});

describe("PVH entry state", () => {
  test("pvhEntrySregs(): flat 32-bit protected mode, paging off, CR0 = PE|ET, CR4 and EFER clear, TR limit 0x67", () => {
    const s = pvhEntrySregs(resetSregs());
    expect(s.cr0).toBe(0x11n);
    expect(s.cr4).toBe(0n);
    expect(s.efer).toBe(0n);
    expect([s.cs.base, s.cs.limit, s.cs.db, s.cs.l, s.cs.type]).toEqual([0n, 0xffff_ffff, 1, 0, 0xb]);
    for (const d of [s.ds, s.es, s.ss])
      expect([d.base, d.limit, d.db, d.type]).toEqual([0n, 0xffff_ffff, 1, 3]);
    expect([s.tr.base, s.tr.limit, s.tr.type]).toEqual([0n, 0x67, 0xb]);
    expect(s.apic_base).toBe(0xfee0_0900n);
  });

  test("pvhEntryRegs(): EIP = entry, EBX = start info, interrupts off", () => {
    const r = pvhEntryRegs(0x100_0850);
    expect([r.rip, r.rbx, r.rflags, r.rsp]).toEqual([0x100_0850n, 0x6000n, RFLAGS_RESERVED, 0n]);
  });
});
