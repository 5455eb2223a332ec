/** The identity page tables of the 64-bit entry, spot-checked entry by entry. */
import { describe, expect, test } from "bun:test";
import {
  BOOT_PAGE_TABLES_END,
  BOOT_PD_ADDRESS,
  BOOT_PDPT_ADDRESS,
  BOOT_PML4_ADDRESS,
  ramRanges,
} from "../../../src/arch/x86_64/layout.ts";
import {
  BOOT_PD_COUNT,
  IDENTITY_MAPPED_BYTES,
  identityPageTables,
  PTE_PAGE_SIZE,
  PTE_PRESENT,
  PTE_WRITABLE,
  writeIdentityPageTables,
} from "../../../src/arch/x86_64/page-tables.ts";
import { GuestMemory } from "../../../src/memory/guest-memory.ts";

const tables = identityPageTables();
const v = new DataView(tables.buffer);
/** The 8-byte entry `index` of the table at guest address `table`. */
const entry = (table: number, index: number) => v.getBigUint64(table - BOOT_PML4_ADDRESS + index * 8, true);
const LEAF = PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE; // 0x83

/** Walks the tables as the CPU does for a 2 MiB mapping: the physical address `linear` maps to. */
function translate(linear: number): number | undefined {
  const pml4e = entry(BOOT_PML4_ADDRESS, Math.floor(linear / 2 ** 39) % 512);
  if (!(pml4e & PTE_PRESENT)) return undefined;
  const pdpte = entry(Number(pml4e & ~0xfffn), Math.floor(linear / 2 ** 30) % 512);
  if (!(pdpte & PTE_PRESENT)) return undefined;
  const pde = entry(Number(pdpte & ~0xfffn), Math.floor(linear / 2 ** 21) % 512);
  if (!(pde & PTE_PRESENT) || !(pde & PTE_PAGE_SIZE)) return undefined;
  return Number(pde & ~0x1f_ffffn) + (linear % 2 ** 21);
}

describe("identityPageTables()", () => {
  test("spans PML4, PDPT and four page directories below 0xf000", () => {
    expect(tables.length).toBe(BOOT_PAGE_TABLES_END - BOOT_PML4_ADDRESS);
    expect(BOOT_PD_COUNT).toBe(4);
    expect(IDENTITY_MAPPED_BYTES).toBe(4 * 2 ** 30);
  });

  test.each([
    ["PML4[0] → PDPT", BOOT_PML4_ADDRESS, 0, 0xa003n],
    ["PML4[1] is empty", BOOT_PML4_ADDRESS, 1, 0n],
    ["PDPT[0] → PD 0", BOOT_PDPT_ADDRESS, 0, 0xb003n],
    ["PDPT[3] → PD 3", BOOT_PDPT_ADDRESS, 3, 0xe003n],
    ["PDPT[4] is empty (nothing above 4 GiB)", BOOT_PDPT_ADDRESS, 4, 0n],
    ["PD 0[0]: 2 MiB page at 0", BOOT_PD_ADDRESS, 0, LEAF],
    ["PD 0[8]: the kernel's 16 MiB", BOOT_PD_ADDRESS, 8, 0x100_0000n | LEAF],
    ["PD 0[511]", BOOT_PD_ADDRESS, 511, 0x3fe0_0000n | LEAF],
    ["PD 1[0]: 1 GiB", BOOT_PD_ADDRESS + 0x1000, 0, 0x4000_0000n | LEAF],
    ["PD 3[511]: the last 2 MiB below 4 GiB", BOOT_PD_ADDRESS + 0x3000, 511, 0xffe0_0000n | LEAF],
  ])("%s", (_name, table, index, expected) => {
    expect(entry(table, index)).toBe(expected);
  });

  test("maps every address below 4 GiB to itself and nothing above", () => {
    for (const a of [0, 0x7000, 0x20000, 0x100_0200, 0xbfff_f000, 0xc000_0000, 0xfee0_0000, 0xffff_ffff]) {
      expect(translate(a)).toBe(a);
    }
    expect(translate(2 ** 32)).toBeUndefined();
  });

  test("writeIdentityPageTables() writes them at BOOT_PML4_ADDRESS", () => {
    const mem = GuestMemory.allocate(ramRanges(1 << 20));
    try {
      writeIdentityPageTables(mem);
      expect(mem.readU64(BOOT_PML4_ADDRESS)).toBe(0xa003n);
      expect(mem.readU64(BOOT_PD_ADDRESS + 0x3000 + 511 * 8)).toBe(0xffe0_0000n | LEAF);
    } finally {
      mem.close();
    }
  });
});
