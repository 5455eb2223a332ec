/**
 * The guest's physical memory map as the BIOS INT 15h/E820 call would report it (ACPI 6.5 §15,
 * "System Address Map Interfaces"). Both boot protocols hand the same table to the kernel: the bzImage
 * in boot_params.e820_table, PVH in hvm_start_info's memmap (Xen's types are e820's).
 *
 * What bunvmm reports, for RAM of `size` bytes split around the 32-bit hole by `ramRanges`:
 *
 *   [0, 640 KiB)                      RAM        conventional memory (the boot structures live here)
 *   [640 KiB, 1 MiB)                  reserved   the ISA hole: legacy VGA, option ROMs and the BIOS area,
 *                                                where the ACPI tables and the RSDP are
 *   [1 MiB, min(size, 3 GiB))         RAM
 *   [3 GiB, 4 GiB)                    (absent)   the 32-bit MMIO hole: LAPIC, IOAPIC, our MMIO devices
 *   [4 GiB, 4 GiB + size − 3 GiB)     RAM        only when size > 3 GiB
 *
 * The hole is left out rather than marked reserved, as Firecracker and cloud-hypervisor do (they
 * reserve only the PCI MMCONFIG window in it, and bunvmm has no PCI): Linux treats an e820 gap below
 * 4 GiB as MMIO space it may assign (e820__setup_pci_gap), and finds LAPIC and IOAPIC in the MADT.
 * The whole ISA hole is reserved, not only the ACPI window: Linux's PVH entry adds exactly that range
 * itself (arch/x86/platform/pvh/enlighten.c), so with it both protocols print the map we built.
 * The ACPI area is "reserved" rather than "ACPI data" (type 3): like a PC's BIOS area it must never be
 * reclaimed, and an OS may reuse type-3 ranges once it has read the tables.
 */
import { HIGH_MEMORY_START, LOW_RAM_END, ramRanges } from "./layout.ts";

/** Address range types (<asm/e820.h>; Xen's XEN_HVM_MEMMAP_TYPE_* have the same values). */
export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;
export const E820_PMEM = 7;

/** The zero page has room for this many entries (E820_MAX_ENTRIES_ZEROPAGE in <asm/bootparam.h>). */
export const E820_MAX_ENTRIES_ZEROPAGE = 128;

export interface E820Entry {
  readonly addr: number;
  readonly size: number;
  readonly type: number;
}

const TYPE_NAMES: Readonly<Record<number, string>> = {
  [E820_RAM]: "usable",
  [E820_RESERVED]: "reserved",
  [E820_ACPI]: "ACPI data",
  [E820_NVS]: "ACPI NVS",
  [E820_UNUSABLE]: "unusable",
  [E820_PMEM]: "persistent",
};

/**
 * The memory map of a VM with `ramSize` bytes of RAM, sorted by address, non-overlapping.
 * @example
 * e820Table(256 << 20); // [0,0xa0000) RAM, [0xa0000,0x100000) reserved, [0x100000,0x10000000) RAM
 */
export function e820Table(ramSize: number): E820Entry[] {
  const ram = ramRanges(ramSize);
  const entries: E820Entry[] = [];
  const add = (start: number, end: number, type: number) => {
    if (end > start) entries.push({ addr: start, size: end - start, type });
  };
  /** The part of [start, end) that is backed by RAM (each range lies within one RAM region). */
  const clip = (start: number, end: number): [number, number] => {
    for (const r of ram) {
      const s = Math.max(start, r.gpa);
      const e = Math.min(end, r.gpa + r.size);
      if (e > s) return [s, e];
    }
    return [start, start];
  };
  add(...clip(0, LOW_RAM_END), E820_RAM);
  add(...clip(LOW_RAM_END, HIGH_MEMORY_START), E820_RESERVED); // holds [ACPI_TABLES_START, ACPI_TABLES_END)
  for (const r of ram) add(Math.max(r.gpa, HIGH_MEMORY_START), r.gpa + r.size, E820_RAM);
  return entries;
}

/** One line per entry, as Linux prints them (`[mem 0x…-0x…] usable`), for logs and test failures. */
export function describeE820(entries: readonly E820Entry[]): string[] {
  const pad = (n: number) => `0x${n.toString(16).padStart(16, "0")}`;
  return entries.map(
    (e) => `[mem ${pad(e.addr)}-${pad(e.addr + e.size - 1)}] ${TYPE_NAMES[e.type] ?? `type ${e.type}`}`,
  );
}
