/**
 * Hands out the machine's device resources and refuses overlaps: port ranges, MMIO windows and GSIs.
 * A device either claims a fixed resource (an address the platform fixes, named in
 * src/arch/x86_64/layout.ts: COM1's ports, the GED's register) or asks for the next free one (an MMIO
 * window of a given size from the allocatable range, a GSI from the allocatable pool: what each
 * virtio-mmio transport does). Every claim is recorded with its owner, so a conflict names both.
 *
 * Threads: VMM thread, while the machine is built.
 */
import { BunvmmError } from "../src/errors.ts";
import { hex } from "../src/numbers.ts";

export interface Range {
  readonly base: number;
  readonly size: number;
}

/** Where allocations come from: [mmioStart, mmioEnd) and GSIs [gsiFirst, gsiLast]. */
export interface AllocatorPools {
  readonly mmioStart: number;
  readonly mmioEnd: number;
  readonly gsiFirst: number;
  readonly gsiLast: number;
}

interface Claim extends Range {
  readonly owner: string;
}

const alignUp = (value: number, alignment: number): number => Math.ceil(value / alignment) * alignment;

export class ResourceAllocator {
  private readonly pio: Claim[] = [];
  private readonly mmio: Claim[] = [];
  private readonly gsis = new Map<number, string>();
  private nextMmio: number;
  private nextGsi: number;

  constructor(private readonly pools: AllocatorPools) {
    this.nextMmio = pools.mmioStart;
    this.nextGsi = pools.gsiFirst;
  }

  /** Claims ports [base, base + size) for `owner`. */
  fixedPio(owner: string, base: number, size: number): Range {
    return this.claim("port", this.pio, { owner, base, size });
  }

  /** Claims guest-physical [base, base + size) for `owner`. */
  fixedMmio(owner: string, base: number, size: number): Range {
    return this.claim("MMIO", this.mmio, { owner, base, size });
  }

  /** The next free `size`-byte MMIO window of the allocatable range, aligned to `alignment`. */
  allocateMmio(owner: string, size: number, alignment = size): Range {
    let base = alignUp(this.nextMmio, alignment);
    while (this.overlapping(this.mmio, base, size)) base = alignUp(base + 1, alignment);
    if (base + size > this.pools.mmioEnd) {
      throw new BunvmmError(
        "input",
        `${owner}: no ${hex(size)}-byte MMIO window left in [${hex(this.pools.mmioStart)}, ${hex(this.pools.mmioEnd)})`,
      );
    }
    this.nextMmio = base + size;
    return this.claim("MMIO", this.mmio, { owner, base, size });
  }

  /** Claims GSI `gsi` for `owner`. */
  fixedGsi(owner: string, gsi: number): number {
    const holder = this.gsis.get(gsi);
    if (holder !== undefined) throw new BunvmmError("input", `${owner}: GSI ${gsi} is already ${holder}'s`);
    this.gsis.set(gsi, owner);
    return gsi;
  }

  /** The next free GSI of the allocatable pool. */
  allocateGsi(owner: string): number {
    while (this.nextGsi <= this.pools.gsiLast && this.gsis.has(this.nextGsi)) this.nextGsi++;
    if (this.nextGsi > this.pools.gsiLast) {
      throw new BunvmmError(
        "input",
        `${owner}: no GSI left in ${this.pools.gsiFirst}..${this.pools.gsiLast}`,
      );
    }
    return this.fixedGsi(owner, this.nextGsi++);
  }

  private overlapping(claims: readonly Claim[], base: number, size: number): Claim | undefined {
    return claims.find((c) => base < c.base + c.size && c.base < base + size);
  }

  private claim(space: string, claims: Claim[], want: Claim): Range {
    if (want.size <= 0) throw new BunvmmError("input", `${want.owner}: ${space} range of size ${want.size}`);
    const other = this.overlapping(claims, want.base, want.size);
    if (other) {
      throw new BunvmmError(
        "input",
        `${want.owner}: ${space} [${hex(want.base)}, ${hex(want.base + want.size)}) overlaps ${other.owner}'s [${hex(other.base)}, ${hex(other.base + other.size)})`,
      );
    }
    claims.push(want);
    return { base: want.base, size: want.size };
  }
}
