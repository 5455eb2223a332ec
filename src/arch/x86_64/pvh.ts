/**
 * The PVH boot of an uncompressed vmlinux (Xen's docs/misc/pvh.pandoc and
 * xen/include/public/arch-x86/hvm/start_info.h; Linux arch/x86/platform/pvh). A kernel built with
 * CONFIG_PVH carries an ELF note "Xen" of type XEN_ELFNOTE_PHYS32_ENTRY giving a 32-bit physical entry
 * point. The loader copies each PT_LOAD segment to its physical address, writes a struct
 * hvm_start_info (magic, version 1, command line, modules = the initramfs, RSDP, memory map) and enters
 * in 32-bit protected mode, paging off, with EBX = the start info's address.
 *
 * The start-info layouts are written from the public Xen header's text (it is not in Debian's headers)
 * and checked by the tests against a C declaration of the same fields and the sizes the header states:
 * hvm_start_info 56 bytes (version 1), hvm_modlist_entry 32, hvm_memmap_table_entry 24.
 */

import type { Regs, Sregs } from "../../kvm/vcpu-fd.ts";
import type { GuestMemory } from "../../memory/guest-memory.ts";
import { hex } from "../../numbers.ts";
import { LinuxBootError, mibToCover } from "./boot-error.ts";
import { CR0_ET, CR0_PE, flatProtectedModeSregs, initialRegs } from "./cpu-state.ts";
import type { E820Entry } from "./e820.ts";
import { type Elf64, PT_LOAD } from "./elf.ts";
import {
  HIGH_MEMORY_START,
  PVH_MEMMAP_ADDRESS,
  PVH_MODLIST_ADDRESS,
  PVH_START_INFO_ADDRESS,
} from "./layout.ts";
import { cLayout, setField, viewOf } from "./struct-layout.ts";

/** The ELF note's owner name and type (xen/include/public/elfnote.h). */
export const XEN_ELFNOTE_OWNER = "Xen";
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
/** hvm_start_info.magic: "xEn3" with the 0x80 bit of the "E" set. */
export const XEN_HVM_START_MAGIC_VALUE = 0x336e_c578;
/** The start-info version bunvmm writes: 1 adds the memory map. */
export const HVM_START_INFO_VERSION = 1;

export const HVM_START_INFO_LAYOUT = cLayout("struct hvm_start_info", 56, {
  magic: [0, 4],
  version: [4, 4],
  flags: [8, 4],
  nr_modules: [12, 4],
  modlist_paddr: [16, 8],
  cmdline_paddr: [24, 8],
  rsdp_paddr: [32, 8],
  memmap_paddr: [40, 8],
  memmap_entries: [48, 4],
  reserved: [52, 4],
});

export const HVM_MODLIST_ENTRY_LAYOUT = cLayout("struct hvm_modlist_entry", 32, {
  paddr: [0, 8],
  size: [8, 8],
  cmdline_paddr: [16, 8],
  reserved: [24, 8],
});

export const HVM_MEMMAP_TABLE_ENTRY_LAYOUT = cLayout("struct hvm_memmap_table_entry", 24, {
  addr: [0, 8],
  size: [8, 8],
  type: [16, 4],
  reserved: [20, 4],
});

/** Memory-map entries the region from PVH_MEMMAP_ADDRESS up to the zero page's address can hold. */
export const PVH_MEMMAP_MAX_ENTRIES = 128;

/**
 * The 32-bit physical entry point from the XEN_ELFNOTE_PHYS32_ENTRY note (4 or 8 bytes: Linux writes
 * it with _ASM_PTR, a quad on x86_64).
 * @throws {LinuxBootError} when the note is absent (a kernel built without CONFIG_PVH) or malformed.
 */
export function pvhEntryPoint(elf: Elf64): number {
  const note = elf.notes.find((n) => n.name === XEN_ELFNOTE_OWNER && n.type === XEN_ELFNOTE_PHYS32_ENTRY);
  if (note === undefined) {
    throw new LinuxBootError(
      "ELF has no XEN_ELFNOTE_PHYS32_ENTRY note: this kernel was built without CONFIG_PVH",
    );
  }
  const v = viewOf(note.desc);
  let entry: bigint;
  if (note.desc.length === 4) entry = BigInt(v.getUint32(0, true));
  else if (note.desc.length === 8) entry = v.getBigUint64(0, true);
  else
    throw new LinuxBootError(
      `the XEN_ELFNOTE_PHYS32_ENTRY note is ${note.desc.length} bytes; expected 4 or 8`,
    );
  if (entry >= 1n << 32n)
    throw new LinuxBootError(`the PVH entry point 0x${entry.toString(16)} is not a 32-bit address`);
  return Number(entry);
}

/**
 * Copies every PT_LOAD segment to its physical address (p_paddr) and zeroes its tail up to p_memsz,
 * after checking that each lies in RAM between 1 MiB and `lowRamEnd`.
 * @returns the range the segments span, for placing the initramfs above it.
 * @throws {LinuxBootError} for an ELF without PT_LOAD segments, or a segment outside that range.
 */
export function loadElfSegments(
  memory: GuestMemory,
  elf: Elf64,
  lowRamEnd: number,
): { start: number; end: number } {
  const loads = elf.segments.map((s, i) => ({ s, i })).filter(({ s }) => s.type === PT_LOAD && s.memsz > 0);
  if (loads.length === 0) throw new LinuxBootError("ELF has no PT_LOAD segment: nothing to load");
  for (const { s, i } of loads) {
    const end = s.paddr + s.memsz;
    if (s.paddr < HIGH_MEMORY_START) {
      throw new LinuxBootError(
        `segment ${i} loads at ${hex(s.paddr)}, below 1 MiB where bunvmm keeps the boot structures`,
      );
    }
    if (end > lowRamEnd || !memory.contains(s.paddr, s.memsz)) {
      throw new LinuxBootError(
        `segment ${i} needs guest RAM [${hex(s.paddr)}, ${hex(end)}) but RAM below 4 GiB ends at ${hex(lowRamEnd)}: ` +
          `give the VM at least ${mibToCover(end)} MiB`,
      );
    }
  }
  for (const { s } of loads) {
    memory.write(s.paddr, elf.bytes.subarray(s.offset, s.offset + s.filesz));
    memory.slice(s.paddr + s.filesz, s.memsz - s.filesz).fill(0);
  }
  return {
    start: Math.min(...loads.map(({ s }) => s.paddr)),
    end: Math.max(...loads.map(({ s }) => s.paddr + s.memsz)),
  };
}

export interface StartInfoOptions {
  readonly cmdlineAddress: number;
  readonly initramfs?: { readonly address: number; readonly size: number };
  readonly rsdpAddress?: number;
  readonly memmap: readonly E820Entry[];
}

/** The three PVH structures and where each goes. */
export interface StartInfoBlobs {
  readonly startInfo: Uint8Array;
  readonly modlist: Uint8Array;
  readonly memmap: Uint8Array;
}

/**
 * Builds hvm_start_info (version 1, flags 0), its module list (one entry for the initramfs, with no
 * command line of its own) and its memory map, addressed for PVH_START_INFO_ADDRESS, PVH_MODLIST_ADDRESS
 * and PVH_MEMMAP_ADDRESS.
 * @throws {LinuxBootError} when the memory map has more entries than its region holds.
 */
export function buildStartInfo(opts: StartInfoOptions): StartInfoBlobs {
  if (opts.memmap.length > PVH_MEMMAP_MAX_ENTRIES) {
    throw new LinuxBootError(
      `the memory map has ${opts.memmap.length} entries; the PVH memmap area holds ${PVH_MEMMAP_MAX_ENTRIES}`,
    );
  }
  const I = HVM_START_INFO_LAYOUT.fields;
  const startInfo = new Uint8Array(HVM_START_INFO_LAYOUT.size);
  const sv = viewOf(startInfo);
  setField(sv, 0, I.magic, XEN_HVM_START_MAGIC_VALUE);
  setField(sv, 0, I.version, HVM_START_INFO_VERSION);
  setField(sv, 0, I.cmdline_paddr, opts.cmdlineAddress);
  setField(sv, 0, I.rsdp_paddr, opts.rsdpAddress ?? 0);
  setField(sv, 0, I.memmap_paddr, PVH_MEMMAP_ADDRESS);
  setField(sv, 0, I.memmap_entries, opts.memmap.length);

  const M = HVM_MODLIST_ENTRY_LAYOUT.fields;
  const modlist = new Uint8Array(opts.initramfs ? HVM_MODLIST_ENTRY_LAYOUT.size : 0);
  if (opts.initramfs) {
    const mv = viewOf(modlist);
    setField(mv, 0, M.paddr, opts.initramfs.address);
    setField(mv, 0, M.size, opts.initramfs.size);
    setField(sv, 0, I.nr_modules, 1);
    setField(sv, 0, I.modlist_paddr, PVH_MODLIST_ADDRESS);
  }

  const E = HVM_MEMMAP_TABLE_ENTRY_LAYOUT;
  const memmap = new Uint8Array(opts.memmap.length * E.size);
  const ev = viewOf(memmap);
  opts.memmap.forEach((e, i) => {
    setField(ev, i * E.size, E.fields.addr, e.addr);
    setField(ev, i * E.size, E.fields.size, e.size);
    setField(ev, i * E.size, E.fields.type, e.type);
  });
  return { startInfo, modlist, memmap };
}

/** Writes buildStartInfo's structures at their fixed addresses. */
export function writeStartInfo(memory: GuestMemory, blobs: StartInfoBlobs): void {
  memory.write(PVH_START_INFO_ADDRESS, blobs.startInfo);
  memory.write(PVH_MODLIST_ADDRESS, blobs.modlist);
  memory.write(PVH_MEMMAP_ADDRESS, blobs.memmap);
}

/** A 32-bit TSS's limit: PVH asks for TR = an active 32-bit TSS with base 0 and limit 0x67. */
const TSS32_LIMIT = 0x67;

/**
 * Segment and control registers at the PVH entry (pvh.pandoc): flat 32-bit protected mode, paging
 * off; CR0 = PE (with ET, which is hard-wired), every other writable CR0 bit and all of CR4 clear;
 * EFER clear; TR a 32-bit TSS with base 0 and limit 0x67.
 */
export function pvhEntrySregs(current: Sregs): Sregs {
  const flat = flatProtectedModeSregs(current);
  return {
    ...flat,
    cr0: CR0_PE | CR0_ET,
    cr4: 0n,
    efer: 0n,
    tr: { ...flat.tr, base: 0n, limit: TSS32_LIMIT },
  };
}

/** General registers at the PVH entry: EIP = the note's entry, EBX = the start info, IF clear. */
export function pvhEntryRegs(entry: number, startInfo: number = PVH_START_INFO_ADDRESS): Regs {
  return initialRegs({ rip: BigInt(entry), rbx: BigInt(startInfo) });
}
