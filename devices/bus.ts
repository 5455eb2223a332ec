/**
 * Address decode: routes a port or MMIO exit to the device that owns the address. Devices see only
 * the offset from their own base, never the address (Firecracker's BusDevice shape).
 *
 * Threads: each vCPU worker builds its own Bus over the same shared device state; a Bus is never
 * shared between threads and never blocks.
 */

/** Widths a guest access can have. */
export type AccessSize = 1 | 2 | 4 | 8;

/** A guest-facing register block. Never throws on guest input: odd widths are counted and ignored. */
export interface BusDevice {
  read(offset: number, size: AccessSize): number;
  write(offset: number, size: AccessSize, value: number): void;
}

interface Range {
  readonly base: number;
  readonly size: number;
  /** Added to (address - base), so one device can own several disjoint ranges (i8042: 0x60, 0x64). */
  readonly offsetBase: number;
  readonly device: BusDevice;
  readonly name: string;
}

/** Reads from addresses no device owns float high, as on a PC bus. */
export function allOnes(size: AccessSize): number {
  return size >= 4 ? 0xffff_ffff : (1 << (size * 8)) - 1;
}

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
  read(addr: number, size: AccessSize): number | undefined {
    const r = this.find(addr);
    return r ? r.device.read(addr - r.base + r.offsetBase, size) : undefined;
  }

  /** False when no device owns `addr` (the write is dropped and the caller counts it). */
  write(addr: number, size: AccessSize, value: number): boolean {
    const r = this.find(addr);
    if (!r) return false;
    r.device.write(addr - r.base + r.offsetBase, size, value);
    return true;
  }

  /** Names of the devices on this bus with their ranges, for logs. */
  describe(): string[] {
    return this.ranges.map((r) => `${r.name} @ 0x${r.base.toString(16)}+0x${r.size.toString(16)}`);
  }
}
