/**
 * Address decode: routes a port or MMIO exit to the device that owns the address. Devices see only
 * the offset from their own base, never the address (Firecracker's BusDevice shape).
 *
 * Threads: each vCPU worker builds its own Bus over the same shared device state; a Bus is never
 * shared between threads and never blocks.
 */

/** Widths a guest access can have: 8 only for MMIO (port I/O is at most 4 bytes). */
export type AccessSize = 1 | 2 | 4 | 8;
/** Widths a `number` carries whole; 8-byte accesses go through `read64`/`write64` as bigint. */
export type WordSize = 1 | 2 | 4;

/**
 * A guest-facing register block. Never throws on guest input: odd widths are counted and ignored.
 *
 * `read`/`write` see 1, 2 and 4 bytes. An 8-byte MMIO access reaches `read64`/`write64` whole when the
 * device has them; a device without them sees two 4-byte accesses, low half (at `offset`) first, then
 * high half (at `offset + 4`), as a 32-bit bus bridge would split it.
 */
export interface BusDevice {
  read(offset: number, size: WordSize): number;
  write(offset: number, size: WordSize, value: number): void;
  read64?(offset: number): bigint;
  write64?(offset: number, value: bigint): void;
}

/** The high half of an 8-byte access split for a device without read64/write64. */
const HIGH_HALF = 4;
const U32 = 0xffff_ffffn;

interface Range {
  readonly base: number;
  readonly size: number;
  /** Added to (address - base), so one device can own several disjoint ranges (i8042: 0x60, 0x64). */
  readonly offsetBase: number;
  readonly device: BusDevice;
  readonly name: string;
}

/** Reads from addresses no device owns float high, as on a PC bus (for 8 bytes: the low half; see ALL_ONES_64). */
export function allOnes(size: AccessSize): number {
  return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
}

/** An unowned 8-byte read. */
export const ALL_ONES_64 = 0xffff_ffff_ffff_ffffn;

/** Thrown while wiring a machine, never at guest run time. */
export class BusConflictError extends Error {
  override readonly name = "BusConflictError";
}

/** A sorted set of non-overlapping ranges, looked up by binary search. */
export class Bus {
  private ranges: Range[] = [];

  constructor(readonly kind: "pio" | "mmio") {}

  /** Claims [base, base+size) for a device. @throws {BusConflictError} on overlap. */
  insert(base: number, size: number, device: BusDevice, name: string, offsetBase = 0): void {
    const clash = this.ranges.find((r) => base < r.base + r.size && r.base < base + size);
    if (clash) {
      throw new BusConflictError(
        `${this.kind} range 0x${base.toString(16)}+0x${size.toString(16)} for ${name} overlaps ${clash.name}`,
      );
    }
    this.ranges.push({ base, size, offsetBase, device, name });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  private find(addr: number): Range | undefined {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid]!;
      if (addr < r.base) hi = mid - 1;
      else if (addr >= r.base + r.size) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  /** The value a device returns, or undefined when no device owns `addr` (caller floats it high). */
  read(addr: number, size: WordSize): number | undefined {
    const r = this.find(addr);
    return r ? r.device.read(addr - r.base + r.offsetBase, size) : undefined;
  }

  /** False when no device owns `addr` (the write is dropped and the caller counts it). */
  write(addr: number, size: WordSize, value: number): boolean {
    const r = this.find(addr);
    if (!r) return false;
    r.device.write(addr - r.base + r.offsetBase, size, value);
    return true;
  }

  /** An 8-byte read, whole (or split for a device without read64); undefined when no device owns `addr`. */
  read64(addr: number): bigint | undefined {
    const r = this.find(addr);
    if (!r) return undefined;
    const offset = addr - r.base + r.offsetBase;
    if (r.device.read64) return BigInt.asUintN(64, r.device.read64(offset));
    const low = r.device.read(offset, 4) >>> 0;
    const high = r.device.read(offset + HIGH_HALF, 4) >>> 0;
    return (BigInt(high) << 32n) | BigInt(low);
  }

  /** An 8-byte write, whole (or split for a device without write64); false when no device owns `addr`. */
  write64(addr: number, value: bigint): boolean {
    const r = this.find(addr);
    if (!r) return false;
    const offset = addr - r.base + r.offsetBase;
    if (r.device.write64) {
      r.device.write64(offset, BigInt.asUintN(64, value));
      return true;
    }
    r.device.write(offset, 4, Number(value & U32));
    r.device.write(offset + HIGH_HALF, 4, Number((value >> 32n) & U32));
    return true;
  }

  /** Names of the devices on this bus with their ranges, for logs. */
  describe(): string[] {
    return this.ranges.map((r) => `${r.name} @ 0x${r.base.toString(16)}+0x${r.size.toString(16)}`);
  }
}
