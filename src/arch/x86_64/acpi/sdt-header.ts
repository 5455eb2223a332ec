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

/** Field sizes of the text fields. */
export const SIGNATURE_LENGTH = 4;
export const OEM_ID_LENGTH = 6;
export const OEM_TABLE_ID_LENGTH = 8;
export const CREATOR_ID_LENGTH = 4;

/** Who built the tables, as the guest's `dmesg` and `acpidump` show it. */
export const OEM_ID = "BUNVMM";
export const OEM_TABLE_ID = "BUNVMM  ";
export const OEM_REVISION = 1;
export const CREATOR_ID = "BVMM";
export const CREATOR_REVISION = 1;

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
  if (length < SDT_HEADER.SIZE) throw new AcpiError(`${signature} length`, length, `must be at least ${SDT_HEADER.SIZE}`);
  const bytes = new Uint8Array(length);
  const view = new DataView(bytes.buffer);
  writeAscii(bytes, SDT_HEADER.SIGNATURE, signature, SIGNATURE_LENGTH);
  view.setUint32(SDT_HEADER.LENGTH, length, LITTLE_ENDIAN);
  view.setUint8(SDT_HEADER.REVISION, revision);
  writeAscii(bytes, SDT_HEADER.OEM_ID, OEM_ID, OEM_ID_LENGTH);
  writeAscii(bytes, SDT_HEADER.OEM_TABLE_ID, OEM_TABLE_ID, OEM_TABLE_ID_LENGTH);
  view.setUint32(SDT_HEADER.OEM_REVISION, OEM_REVISION, LITTLE_ENDIAN);
  writeAscii(bytes, SDT_HEADER.CREATOR_ID, CREATOR_ID, CREATOR_ID_LENGTH);
  view.setUint32(SDT_HEADER.CREATOR_REVISION, CREATOR_REVISION, LITTLE_ENDIAN);
  fill(view, bytes);
  setChecksum(bytes, SDT_HEADER.CHECKSUM);
  return bytes;
}
