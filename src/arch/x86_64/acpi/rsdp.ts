/**
 * RSDP (ACPI 6.5 §5.2.5): the root pointer the guest finds at RSDP_ADDRESS (legacy scan of 0xE0000-0xFFFFF,
 * or boot_params.acpi_rsdp_addr). Revision 2: 36 bytes, an XSDT address, and two checksums.
 * @module
 */
import { BUNVMM_IDENTITY, LITTLE_ENDIAN, SDT_TEXT_LENGTH, setChecksum, writeAscii } from "./sdt-header.ts";

/** What the OS scans for, on a 16-byte boundary. */
export const RSDP_SIGNATURE = "RSD PTR ";
const RSDP_SIGNATURE_LENGTH = 8;
/** Revision 2 means ACPI 2.0 or later: the XSDT fields exist. */
export const RSDP_REVISION = 2;

/** Byte offsets (Table 5.3); CHECKSUM covers the first V1_SIZE bytes, EXTENDED_CHECKSUM all SIZE bytes. */
export const RSDP = {
  SIGNATURE: 0,
  CHECKSUM: 8,
  OEM_ID: 9,
  REVISION: 15,
  RSDT_ADDRESS: 16,
  V1_SIZE: 20,
  LENGTH: 20,
  XSDT_ADDRESS: 24,
  EXTENDED_CHECKSUM: 32,
  SIZE: 36,
} as const;

/** Builds the RSDP; there is no RSDT (its address stays 0), only the XSDT. */
export function buildRsdp(xsdtAddress: number): Uint8Array {
  const bytes = new Uint8Array(RSDP.SIZE);
  const view = new DataView(bytes.buffer);
  writeAscii(bytes, RSDP.SIGNATURE, RSDP_SIGNATURE, RSDP_SIGNATURE_LENGTH);
  writeAscii(bytes, RSDP.OEM_ID, BUNVMM_IDENTITY.OEM_ID, SDT_TEXT_LENGTH.OEM_ID);
  view.setUint8(RSDP.REVISION, RSDP_REVISION);
  view.setUint32(RSDP.LENGTH, RSDP.SIZE, LITTLE_ENDIAN);
  view.setBigUint64(RSDP.XSDT_ADDRESS, BigInt(xsdtAddress), LITTLE_ENDIAN);
  setChecksum(bytes, RSDP.CHECKSUM, RSDP.V1_SIZE);
  setChecksum(bytes, RSDP.EXTENDED_CHECKSUM);
  return bytes;
}
