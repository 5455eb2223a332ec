/**
 * Identity page tables for the 64-bit bzImage entry (Intel SDM Vol. 3A §4.5, 4-level paging). boot.rst
 * asks for an identity map of the kernel up to init_size, the zero page and the command line; bunvmm
 * maps all of [0, 4 GiB) with 2 MiB pages, which covers them wherever they sit below the 32-bit hole:
 *
 *   BOOT_PML4_ADDRESS   PML4[0]      → PDPT
 *   BOOT_PDPT_ADDRESS   PDPT[0..3]   → PD 0..3
 *   BOOT_PD_ADDRESS     PD n [0..511] → 2 MiB page at (n × 512 + i) × 2 MiB
 *
 * 2 MiB pages need no CPUID feature (1 GiB pages need PDPE1GB). The kernel replaces these tables early.
 */
import type { GuestMemory } from "../../memory/guest-memory.ts";
import { BOOT_PAGE_TABLES_END, BOOT_PD_ADDRESS, BOOT_PDPT_ADDRESS, BOOT_PML4_ADDRESS } from "./layout.ts";

/** Paging-structure entry bits. */
export const PTE_PRESENT = 1n << 0n;
export const PTE_WRITABLE = 1n << 1n;
/** In a PD entry: maps a 2 MiB page instead of pointing at a page table. */
export const PTE_PAGE_SIZE = 1n << 7n;

const ENTRIES_PER_TABLE = 512;
const TABLE_SIZE = 4096;
const PAGE_2M = 2n << 20n;
/** Page directories, one per GiB mapped. */
export const BOOT_PD_COUNT = (BOOT_PAGE_TABLES_END - BOOT_PD_ADDRESS) / TABLE_SIZE;
/** Bytes the boot tables identity-map from address 0 (4 GiB). */
export const IDENTITY_MAPPED_BYTES = BOOT_PD_COUNT * ENTRIES_PER_TABLE * 2 ** 21;

/** The tables' bytes, to be written at BOOT_PML4_ADDRESS (they span up to BOOT_PAGE_TABLES_END). */
export function identityPageTables(): Uint8Array {
  const bytes = new Uint8Array(BOOT_PAGE_TABLES_END - BOOT_PML4_ADDRESS);
  const v = new DataView(bytes.buffer);
  const put = (tableAddress: number, index: number, entry: bigint) =>
    v.setBigUint64(tableAddress - BOOT_PML4_ADDRESS + index * 8, entry, true);
  put(BOOT_PML4_ADDRESS, 0, BigInt(BOOT_PDPT_ADDRESS) | PTE_PRESENT | PTE_WRITABLE);
  for (let pd = 0; pd < BOOT_PD_COUNT; pd++) {
    const pdAddress = BOOT_PD_ADDRESS + pd * TABLE_SIZE;
    put(BOOT_PDPT_ADDRESS, pd, BigInt(pdAddress) | PTE_PRESENT | PTE_WRITABLE);
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      const page = BigInt(pd * ENTRIES_PER_TABLE + i) * PAGE_2M;
      put(pdAddress, i, page | PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE);
    }
  }
  return bytes;
}

/** Writes the identity tables into guest RAM; CR3 = BOOT_PML4_ADDRESS uses them. */
export function writeIdentityPageTables(memory: GuestMemory): void {
  memory.write(BOOT_PML4_ADDRESS, identityPageTables());
}
