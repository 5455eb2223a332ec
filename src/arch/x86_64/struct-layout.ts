/**
 * Byte layouts of the boot-protocol structs (Linux's boot_params, Xen's hvm_start_info, ELF headers),
 * declared once as named offsets (ffi/layout.ts, like every struct bunvmm shares with C) and read or
 * written only through those names, with getField/setField.
 */
import type { Field } from "../../../ffi/layout.ts";

export { type CLayout, cLayout, type Field } from "../../../ffi/layout.ts";

/**
 * Reads an unsigned little-endian field of 1, 2, 4 or 8 bytes as a number. 8-byte values above 2^53
 * cannot be guest addresses or sizes here, so they throw rather than lose bits.
 */
export function getField(view: DataView, base: number, field: Field): number {
  const at = base + field.offset;
  switch (field.size) {
    case 1:
      return view.getUint8(at);
    case 2:
      return view.getUint16(at, true);
    case 4:
      return view.getUint32(at, true);
    case 8: {
      const v = view.getBigUint64(at, true);
      if (v > BigInt(Number.MAX_SAFE_INTEGER))
        throw new RangeError(`0x${v.toString(16)} does not fit in a number`);
      return Number(v);
    }
    default:
      throw new RangeError(`a ${field.size}-byte field is not an integer`);
  }
}

/** Writes an unsigned little-endian field of 1, 2, 4 or 8 bytes. */
export function setField(view: DataView, base: number, field: Field, value: number): void {
  const at = base + field.offset;
  if (!Number.isSafeInteger(value) || value < 0 || (field.size < 8 && value >= 2 ** (8 * field.size))) {
    throw new RangeError(`${value} does not fit in ${field.size} bytes`);
  }
  switch (field.size) {
    case 1:
      view.setUint8(at, value);
      return;
    case 2:
      view.setUint16(at, value, true);
      return;
    case 4:
      view.setUint32(at, value, true);
      return;
    case 8:
      view.setBigUint64(at, BigInt(value), true);
      return;
    default:
      throw new RangeError(`a ${field.size}-byte field is not an integer`);
  }
}

/** A DataView over exactly the bytes of `bytes` (which may be a subarray). */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
