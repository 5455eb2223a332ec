/**
 * Guest RAM: anonymous host mappings registered with KVM, reached through bounds-checked accessors.
 * Access, not policy: the layout (where RAM sits, the MMIO hole) comes from src/arch/x86_64/layout.ts.
 *
 * Threads: the VMM thread maps and owns the memory; vCPU workers `attach` views over the same host
 * addresses (no copy). Nothing here blocks.
 *
 * Views in windows: an ArrayBuffer over foreign memory (bun:ffi's toArrayBuffer) cannot be longer than
 * 4 GiB (longer ones throw "RangeError: Out of memory"), while one RAM region can be up to the schema's
 * 64 GiB. So no view ever covers a whole region: each region is reached through fixed windows of
 * WINDOW_BYTES, made once when the memory is allocated or attached, and the rare access that straddles
 * two windows gets a view of its own, made for it over exactly its bytes.
 */

import { toArrayBuffer } from "bun:ffi";
import {
  errno,
  libc,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
} from "../../ffi/libc.ts";
import { BunvmmError } from "../errors.ts";
import { MIB } from "../numbers.ts";
import { LibcError } from "../sys/libc-error.ts";

export const PAGE_SIZE = 4096;
/**
 * Guest RAM below this stays on 4 KiB pages even with THP: the VMM itself writes there (boot
 * structures, ACPI tables at 0xe0000, a raw image at 0x10000), and one huge page would put 2 MiB in
 * the VMM's RSS for a few KiB written (a raw guest that only halts, docs/performance.md).
 */
export const SMALL_PAGES_BELOW = 2 * MIB;

/** Bytes each standing view covers (the last window of a region may be shorter). A power of two. */
export const WINDOW_BYTES = 2 ** 30;
/** Longest view Bun makes over foreign memory: toArrayBuffer refuses anything longer. */
export const MAX_VIEW_BYTES = 2 ** 32;

/** A guest access that falls outside RAM: names the address and length. */
export class GuestMemoryError extends BunvmmError {
  override readonly name = "GuestMemoryError";
  constructor(
    readonly gpa: number,
    readonly len: number,
    reason = "is not guest RAM",
  ) {
    super("input", `guest range 0x${gpa.toString(16)}+0x${len.toString(16)} ${reason}`);
  }
}

/** What a worker needs to build its own views of a region (plain data, structured-clonable). */
export interface RegionDescriptor {
  readonly gpa: number;
  readonly size: number;
  readonly hostAddr: number;
}

/** One view over host memory, as bytes and as a little-endian DataView over the same bytes. */
interface Window {
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

interface Region extends RegionDescriptor {
  /** Window k covers region offsets [k * WINDOW_BYTES, min((k + 1) * WINDOW_BYTES, size)). */
  readonly windows: Window[];
}

/** Where one access lands: a view that holds all of it, and the access's offset in that view. */
interface Located {
  readonly window: Window;
  readonly offset: number;
}

function makeWindow(hostAddr: number, len: number): Window {
  const bytes = new Uint8Array(toArrayBuffer(hostAddr, 0, len));
  return { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}

/** Guest RAM as a set of regions, each one host mapping. */
export class GuestMemory {
  private constructor(
    private readonly regions: Region[],
    private readonly owned: boolean,
  ) {}

  /**
   * Maps each range as private anonymous memory with MAP_NORESERVE, so untouched guest RAM costs
   * nothing on the host; with `thp`, asks for transparent huge pages (a Linux guest booted 3x faster
   * on our nested machines: fewer EPT faults) above SMALL_PAGES_BELOW. @throws {GuestMemoryError} for an unaligned size,
   * {LibcError} when mmap fails.
   */
  static allocate(
    ranges: ReadonlyArray<{ gpa: number; size: number }>,
    options: { thp?: boolean } = {},
  ): GuestMemory {
    const regions: Region[] = [];
    try {
      for (const { gpa, size } of ranges) {
        if (size <= 0 || size % PAGE_SIZE !== 0 || gpa % PAGE_SIZE !== 0) {
          throw new GuestMemoryError(gpa, size, `is not a whole number of ${PAGE_SIZE}-byte pages`);
        }
        const addr = libc.mmap(
          0,
          size,
          PROT_READ | PROT_WRITE,
          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
          -1,
          0,
        );
        if (BigInt(addr) === MAP_FAILED) throw new LibcError(`mmap of ${size} bytes of guest RAM`, errno());
        regions.push(GuestMemory.region({ gpa, size, hostAddr: Number(addr) }));
        // Advice only: where THP is off it fails and RAM simply stays on 4 KiB pages. Not below
        // SMALL_PAGES_BELOW: what the VMM writes there would pull in whole huge pages.
        const skip = Math.min(size, Math.max(0, SMALL_PAGES_BELOW - gpa));
        if (options.thp && skip < size) libc.madvise(Number(addr) + skip, size - skip, MADV_HUGEPAGE);
      }
    } catch (e) {
      for (const r of regions) libc.munmap(r.hostAddr, r.size);
      throw e;
    }
    return new GuestMemory(regions, true);
  }

  /**
   * Maps each range from `fd` (a snapshot's memory file) at `fileOffsets[i]`, MAP_PRIVATE: pages are
   * read from the file when the guest first touches them, and a write copies the page, so the file is
   * never changed and one file can back many VMs. @throws {LibcError} when mmap fails.
   */
  static mapFile(
    ranges: ReadonlyArray<{ gpa: number; size: number }>,
    fd: number,
    fileOffsets: readonly number[],
  ): GuestMemory {
    const regions: Region[] = [];
    try {
      ranges.forEach(({ gpa, size }, i) => {
        const addr = libc.mmap(
          0,
          size,
          PROT_READ | PROT_WRITE,
          MAP_PRIVATE | MAP_NORESERVE,
          fd,
          fileOffsets[i] ?? 0,
        );
        if (BigInt(addr) === MAP_FAILED)
          throw new LibcError(`mmap of ${size} bytes of guest RAM from a file`, errno());
        regions.push(GuestMemory.region({ gpa, size, hostAddr: Number(addr) }));
      });
    } catch (e) {
      for (const r of regions) libc.munmap(r.hostAddr, r.size);
      throw e;
    }
    return new GuestMemory(regions, true);
  }

  /** Views over memory another thread allocated; `close()` on it unmaps nothing. */
  static attach(descriptors: readonly RegionDescriptor[]): GuestMemory {
    return new GuestMemory(
      descriptors.map((d) => GuestMemory.region(d)),
      false,
    );
  }

  private static region(d: RegionDescriptor): Region {
    const windows: Window[] = [];
    for (let start = 0; start < d.size; start += WINDOW_BYTES) {
      windows.push(makeWindow(d.hostAddr + start, Math.min(WINDOW_BYTES, d.size - start)));
    }
    return { ...d, windows };
  }

  get descriptors(): RegionDescriptor[] {
    return this.regions.map(({ gpa, size, hostAddr }) => ({ gpa, size, hostAddr }));
  }

  /** Total bytes of RAM. */
  get size(): number {
    return this.regions.reduce((n, r) => n + r.size, 0);
  }

  private find(gpa: number, len: number): Region {
    for (const r of this.regions) {
      if (gpa >= r.gpa && gpa + len <= r.gpa + r.size && len >= 0) return r;
    }
    throw new GuestMemoryError(gpa, len);
  }

  /** The view holding all of [gpa, gpa+len): its window, or a view made for an access across two. */
  private locate(gpa: number, len: number): Located {
    const r = this.find(gpa, len);
    const offset = gpa - r.gpa;
    if (len === 0) return { window: r.windows[0]!, offset: 0 }; // empty, even at the region's end
    const k = Math.floor(offset / WINDOW_BYTES);
    const inWindow = offset - k * WINDOW_BYTES;
    const window = r.windows[k]!;
    if (inWindow + len <= window.bytes.length) return { window, offset: inWindow };
    if (len > MAX_VIEW_BYTES) {
      throw new GuestMemoryError(gpa, len, `is longer than one view can be (${MAX_VIEW_BYTES} bytes)`);
    }
    return { window: makeWindow(r.hostAddr + offset, len), offset: 0 };
  }

  /** A live view of guest bytes [gpa, gpa+len); throws if the range is not all RAM. */
  slice(gpa: number, len: number): Uint8Array {
    const { window, offset } = this.locate(gpa, len);
    return window.bytes.subarray(offset, offset + len);
  }

  /** True when [gpa, gpa+len) lies inside one RAM region. */
  contains(gpa: number, len: number): boolean {
    return this.regions.some((r) => gpa >= r.gpa && len >= 0 && gpa + len <= r.gpa + r.size);
  }

  write(gpa: number, data: Uint8Array): void {
    this.slice(gpa, data.length).set(data);
  }

  read(gpa: number, len: number): Uint8Array {
    return this.slice(gpa, len).slice();
  }

  readU32(gpa: number): number {
    const { window, offset } = this.locate(gpa, 4);
    return window.view.getUint32(offset, true);
  }

  writeU32(gpa: number, value: number): void {
    const { window, offset } = this.locate(gpa, 4);
    window.view.setUint32(offset, value >>> 0, true);
  }

  readU64(gpa: number): bigint {
    const { window, offset } = this.locate(gpa, 8);
    return window.view.getBigUint64(offset, true);
  }

  writeU64(gpa: number, value: bigint): void {
    const { window, offset } = this.locate(gpa, 8);
    window.view.setBigUint64(offset, value, true);
  }

  /** Unmaps owned memory. Views taken earlier must not be used afterwards. */
  close(): void {
    if (!this.owned) return;
    for (const r of this.regions.splice(0)) libc.munmap(r.hostAddr, r.size);
  }
}
