/**
 * XSDT (ACPI 6.5 §5.2.8): the list of 64-bit table addresses the RSDP leads to (FADT, MADT); the DSDT is
 * reached through the FADT, not listed here.
 * @module
 */
import { buildSdt, LITTLE_ENDIAN, SDT_HEADER } from "./sdt-header.ts";

/** The XSDT's signature, also its key in AcpiTables. */
export const XSDT_SIGNATURE = "XSDT";
/** Revision 1: the only XSDT revision (§5.2.8). */
export const XSDT_REVISION = 1;
/** Entries start right after the header. */
export const XSDT_ENTRIES = SDT_HEADER.SIZE;
/** Each entry is a 64-bit table address. */
export const XSDT_ENTRY_SIZE = 8;

/** Builds an XSDT listing `addresses` in order. */
export function buildXsdt(addresses: readonly number[]): Uint8Array {
  const length = XSDT_ENTRIES + XSDT_ENTRY_SIZE * addresses.length;
  return buildSdt(XSDT_SIGNATURE, XSDT_REVISION, length, (view) => {
    addresses.forEach((address, i) => {
      view.setBigUint64(XSDT_ENTRIES + XSDT_ENTRY_SIZE * i, BigInt(address), LITTLE_ENDIAN);
    });
  });
}
