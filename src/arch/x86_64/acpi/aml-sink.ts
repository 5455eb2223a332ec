/**
 * Where AML and ACPI table bytes go: a byte sink with little-endian word/dword/qword defaults (the
 * rust-vmm acpi_tables shape), a growable byte-array sink, and the PkgLength encoding of ACPI 6.5
 * §20.2.4, which needs the encoded body's size before the body itself.
 * @module
 */
import { AcpiError } from "./acpi-error.ts";

const BYTE_MASK = 0xff;
const BITS_PER_BYTE = 8;

/** A byte sink: subclasses give `byte()`; multi-byte values are little-endian as ACPI requires (§5.2). */
export abstract class AmlSink {
  /** Appends one byte (the low 8 bits of `value`). */
  abstract byte(value: number): void;

  /** Appends a 16-bit little-endian value. */
  word(value: number): void {
    this.byte(value);
    this.byte(value >>> BITS_PER_BYTE);
  }

  /** Appends a 32-bit little-endian value. */
  dword(value: number): void {
    this.word(value & 0xffff);
    this.word(value >>> 16);
  }

  /** Appends a 64-bit little-endian value. */
  qword(value: bigint): void {
    const v = BigInt.asUintN(64, value);
    this.dword(Number(v & 0xffff_ffffn));
    this.dword(Number(v >> 32n));
  }

  /** Appends bytes as they are. */
  bytes(data: ArrayLike<number>): void {
    for (let i = 0; i < data.length; i++) this.byte(data[i] ?? 0);
  }
}

/** Collects bytes in memory: the scratch sink for package bodies and the output sink for whole tables. */
export class ByteArraySink extends AmlSink {
  private buffer = new Uint8Array(64);
  private used = 0;

  override byte(value: number): void {
    if (this.used === this.buffer.length) {
      const grown = new Uint8Array(this.buffer.length * 2);
      grown.set(this.buffer);
      this.buffer = grown;
    }
    this.buffer[this.used++] = value & BYTE_MASK;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.used;
  }

  /** A copy of the bytes written so far. */
  toBytes(): Uint8Array {
    return this.buffer.slice(0, this.used);
  }
}

/** Sums bytes mod 256: an ACPI checksum is the byte that makes a table sum to zero (§5.2.5.3, §5.2.6). */
export class ChecksumSink extends AmlSink {
  private sum = 0;

  override byte(value: number): void {
    this.sum = (this.sum + (value & BYTE_MASK)) & BYTE_MASK;
  }

  /** The byte that, added to everything written, makes the total 0 mod 256. */
  get checksum(): number {
    return (0x100 - this.sum) & BYTE_MASK;
  }
}

/** The byte that makes `data` sum to 0 mod 256 (with the checksum byte itself still 0 in `data`). */
export function checksumOf(data: ArrayLike<number>): number {
  const sink = new ChecksumSink();
  sink.bytes(data);
  return sink.checksum;
}

/**
 * PkgLength sizes (§20.2.4): one byte holds 6 bits; 2, 3 and 4 bytes hold 4 bits in the lead byte plus
 * 8 bits per following byte, so 12, 20 and 28 bits.
 */
const PKG_LENGTH_LIMITS = [1 << 6, 1 << 12, 1 << 20, 1 << 28] as const;
const PKG_LENGTH_LEAD_NIBBLE = 0x0f;
const PKG_LENGTH_LEAD_BITS = 4;
const PKG_LENGTH_COUNT_SHIFT = 6;

/**
 * How many bytes encode a PkgLength for `size` bytes (or bits) of content: the fewest for which
 * size + those bytes stays under the limit, since a package's length counts its own bytes.
 */
function pkgLengthByteCount(size: number): number {
  for (const [i, limit] of PKG_LENGTH_LIMITS.entries()) if (size + i + 1 < limit) return i + 1;
  throw new AcpiError("AML PkgLength", size, "must be below 2^28");
}

/** Writes `value` as a PkgLength of `count` bytes (the value must fit). */
function writePkgLength(out: AmlSink, value: number, count: number): void {
  if (count === 1) {
    out.byte(value);
    return;
  }
  out.byte(((count - 1) << PKG_LENGTH_COUNT_SHIFT) | (value & PKG_LENGTH_LEAD_NIBBLE));
  let rest = value >>> PKG_LENGTH_LEAD_BITS;
  for (let i = 1; i < count; i++, rest >>>= BITS_PER_BYTE) out.byte(rest);
}

/**
 * Writes a PkgLength whose value is `value` itself, not counting its own bytes: the bit counts of Field
 * elements (§20.2.5.2 NamedField, ReservedField). The byte count is chosen as for a package, like iasl
 * does (so 63 takes two bytes, 4f 03): either encoding is valid, this one matches iasl byte for byte.
 */
export function writeRawPkgLength(out: AmlSink, value: number): void {
  writePkgLength(out, value, pkgLengthByteCount(value));
}

/**
 * Writes `PkgLength body`: the length counts itself and the body (§20.2.4), so the body is encoded into a
 * scratch sink first, then the smallest encoding whose limit holds body + its own bytes is chosen.
 */
export function writePackage(out: AmlSink, body: (inner: AmlSink) => void): void {
  const scratch = new ByteArraySink();
  body(scratch);
  const count = pkgLengthByteCount(scratch.length);
  writePkgLength(out, scratch.length + count, count);
  out.bytes(scratch.toBytes());
}
