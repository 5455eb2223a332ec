/**
 * XSDT (ACPI 6.5 §5.2.8): the list of 64-bit table addresses the RSDP leads to (FADT, MADT); the DSDT is
 * reached through the FADT, not listed here.
 * @module
 */
import { LITTLE_ENDIAN, SDT_HEADER, buildSdt } from "./sdt-header.ts";

export const XSDT_SIGNATURE = "XSDT";
export const XSDT_REVISION = 1;
/** Entries start right after the header; each is a 64-bit address. */
export const XSDT_ENTRIES = SDT_HEADER.SIZE;
export const XSDT_ENTRY_SIZE = 8;

/** Builds an XSDT listing `addresses` in order. */
export function buildXsdt(addresses: readonly number[]): Uint8Array {
  const length = XSDT_ENTRIES + XSDT_ENTRY_SIZE * addresses.length;
  return buildSdt(XSDT_SIGNATURE, XSDT_REVISION, length, (view) => {
    addresses.forEach((address, i) => view.setBigUint64(XSDT_ENTRIES + XSDT_ENTRY_SIZE * i, BigInt(address), LITTLE_ENDIAN));
  });
}
