/**
 * The 36-byte System Description Table header every ACPI table but the RSDP starts with (ACPI 6.5
 * §5.2.6), bunvmm's OEM identity, and the checksum that makes a whole table sum to zero.
 * @module
 */
import { AcpiError } from "./acpi-error.ts";
import { checksumOf } from "./aml-sink.ts";

/** Byte offsets in the header (§5.2.6, Table 5.4). */
export const SDT_HEADER = {
  SIGNATURE: 0,
  LENGTH: 4,
  REVISION: 8,
  CHECKSUM: 9,
  OEM_ID: 10,
  OEM_TABLE_ID: 16,
  OEM_REVISION: 24,
  CREATOR_ID: 28,
  CREATOR_REVISION: 32,
  SIZE: 36,
} as const;

/** Sizes of the header's text fields (they are not NUL-terminated). */
export const SDT_TEXT_LENGTH = { SIGNATURE: 4, OEM_ID: 6, OEM_TABLE_ID: 8, CREATOR_ID: 4 } as const;

/** Who built the tables, as the guest's `dmesg` and `acpidump` show it (the RSDP has the OEM id too). */
export const BUNVMM_IDENTITY = {
  OEM_ID: "BUNVMM",
  OEM_TABLE_ID: "BUNVMM  ",
  OEM_REVISION: 1,
  CREATOR_ID: "BVMM",
  CREATOR_REVISION: 1,
} as const;

/** DataView setters take this to write little-endian, as every ACPI field is. */
export const LITTLE_ENDIAN = true;

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** Writes `text` (printable ASCII, exactly `length` characters) at `offset`. */
export function writeAscii(bytes: Uint8Array, offset: number, text: string, length: number): void {
  if (text.length !== length || !PRINTABLE_ASCII.test(text)) {
    throw new AcpiError("ACPI text field", text, `must be ${length} printable ASCII characters`);
  }
  for (let i = 0; i < length; i++) bytes[offset + i] = text.charCodeAt(i);
}

/** Sets the byte at `checksumOffset` so that `bytes` sums to 0 mod 256. */
export function setChecksum(bytes: Uint8Array, checksumOffset: number, end = bytes.length): void {
  bytes[checksumOffset] = 0;
  bytes[checksumOffset] = checksumOf(bytes.subarray(0, end));
}

/**
 * Builds a table of `length` bytes: writes the header, lets `fill` write the body through a DataView over
 * the whole table (offsets are table offsets), then sets the checksum over the whole table.
 */
export function buildSdt(
  signature: string,
  revision: number,
  length: number,
  fill: (view: DataView, bytes: Uint8Array) => void,
): Uint8Array {
  if (length < SDT_HEADER.SIZE)
    throw new AcpiError(`${signature} length`, length, `must be at least ${SDT_HEADER.SIZE}`);
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  writeAscii(bytes, SDT_HEADER.SIGNATURE, signature, SDT_TEXT_LENGTH.SIGNATURE);
  view.setUint32(SDT_HEADER.LENGTH, length, LITTLE_ENDIAN);
  view.setUint8(SDT_HEADER.REVISION, revision);
  writeAscii(bytes, SDT_HEADER.OEM_ID, BUNVMM_IDENTITY.OEM_ID, SDT_TEXT_LENGTH.OEM_ID);
  writeAscii(bytes, SDT_HEADER.OEM_TABLE_ID, BUNVMM_IDENTITY.OEM_TABLE_ID, SDT_TEXT_LENGTH.OEM_TABLE_ID);
  view.setUint32(SDT_HEADER.OEM_REVISION, BUNVMM_IDENTITY.OEM_REVISION, LITTLE_ENDIAN);
  writeAscii(bytes, SDT_HEADER.CREATOR_ID, BUNVMM_IDENTITY.CREATOR_ID, SDT_TEXT_LENGTH.CREATOR_ID);
  view.setUint32(SDT_HEADER.CREATOR_REVISION, BUNVMM_IDENTITY.CREATOR_REVISION, LITTLE_ENDIAN);
  fill(view, bytes);
  setChecksum(bytes, SDT_HEADER.CHECKSUM);
  return bytes;
}
