/**
 * Guest RAM in a snapshot: one file, the RAM regions back to back (region i at the sum of the sizes
 * before it), as a sparse file. A page the guest never touched is a hole, and so is a page of zeros:
 * /proc/self/pagemap says which pages of the anonymous mapping exist at all (present in RAM or swapped
 * out; a page never faulted in is neither), and only those are read, checked for zeros and written with
 * pwrite at their own offset. A 1 GiB guest that used 50 MiB costs 50 MiB of disk and of writing.
 *
 * Threads: VMM thread, while the vCPUs are parked (nothing changes RAM under the writer). The writes
 * are synchronous file I/O, in runs of at most RUN_BYTES so a progress line can be logged between them.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from "node:fs";
import { type GuestMemory, PAGE_SIZE } from "../memory/guest-memory.ts";
import { Checksum } from "./format.ts";

/** A pagemap entry per page: bit 63 the page is present in RAM, bit 62 it is swapped out. */
const PAGEMAP_ENTRY_BYTES = 8;
const PAGEMAP_PRESENT = 1n << 63n;
const PAGEMAP_SWAPPED = 1n << 62n;
/** Pages looked up per pagemap read (2 MiB of pagemap, 1 GiB of RAM). */
const PAGEMAP_CHUNK_PAGES = 1 << 18;
/** Longest single write; also how often progress can be reported. Divides the 1 GiB view windows. */
const RUN_BYTES = 1 << 20;
const WORDS_PER_PAGE = PAGE_SIZE / 8;

export interface MemoryFileStats {
  /** Bytes of RAM the file stands for (its length). */
  readonly size: number;
  /** Bytes actually written (the pages that hold data). */
  readonly written: number;
  /** Pages skipped because the guest never touched them, and pages skipped because they hold zeros. */
  readonly untouchedPages: number;
  readonly zeroPages: number;
  /** [file offset, length] of each run written, in file order; the rest of the file is holes. */
  readonly extents: Array<[number, number]>;
  /** The runs' checksum (src/snapshot/format.ts `checksum`, in extent order). */
  readonly checksum: string;
}

/** True when the 4 KiB page at `bytes[at]` is all zeros. */
function isZeroPage(bytes: Uint8Array, at: number): boolean {
  const words = new BigUint64Array(bytes.buffer, bytes.byteOffset + at, WORDS_PER_PAGE);
  for (let i = 0; i < WORDS_PER_PAGE; i++) if (words[i] !== 0n) return false;
  return true;
}

/** Which pages of [hostAddr, hostAddr + size) exist (present or swapped), one bool per page. */
function existingPages(pagemapFd: number, hostAddr: number, size: number): Uint8Array {
  const pages = size / PAGE_SIZE;
  const out = new Uint8Array(pages);
  const buf = new BigUint64Array(Math.min(PAGEMAP_CHUNK_PAGES, pages));
  const firstPage = hostAddr / PAGE_SIZE;
  for (let p = 0; p < pages; p += buf.length) {
    const n = Math.min(buf.length, pages - p);
    const got = readSync(pagemapFd, buf, 0, n * PAGEMAP_ENTRY_BYTES, (firstPage + p) * PAGEMAP_ENTRY_BYTES);
    for (let i = 0; i < got / PAGEMAP_ENTRY_BYTES; i++) {
      if (buf[i]! & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED)) out[p + i] = 1;
    }
  }
  return out;
}

/**
 * Writes `memory` to `path` (created, or truncated) as a sparse file. `progress(done, total)` is called
 * after each run of RUN_BYTES of RAM. @throws the fs error naming the path (ENOSPC, EACCES).
 */
export function writeMemoryFile(
  path: string,
  memory: GuestMemory,
  progress: (done: number, total: number) => void = () => undefined,
): MemoryFileStats {
  const fd = openSync(path, "w");
  const pagemap = openSync("/proc/self/pagemap", "r");
  let written = 0;
  let untouchedPages = 0;
  let zeroPages = 0;
  let fileBase = 0;
  const extents: Array<[number, number]> = [];
  const sum = new Checksum();
  try {
    const total = memory.size;
    ftruncateSync(fd, total);
    for (const r of memory.descriptors) {
      const exists = existingPages(pagemap, r.hostAddr, r.size);
      for (let run = 0; run < r.size; run += RUN_BYTES) {
        const len = Math.min(RUN_BYTES, r.size - run);
        const bytes = memory.slice(r.gpa + run, len);
        // Coalesce consecutive data pages into one pwrite.
        let start = -1;
        const flush = (end: number) => {
          if (start < 0) return;
          const at = fileBase + run + start;
          const data = bytes.subarray(start, end);
          for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off, at + off);
          sum.add(data);
          extents.push([at, data.length]);
          written += data.length;
          start = -1;
        };
        for (let at = 0; at < len; at += PAGE_SIZE) {
          const page = (run + at) / PAGE_SIZE;
          let data = false;
          if (!exists[page]) untouchedPages++;
          else if (isZeroPage(bytes, at)) zeroPages++;
          else data = true;
          if (data && start < 0) start = at;
          if (!data) flush(at);
        }
        flush(len);
        progress(fileBase + run + len, total);
      }
      fileBase += r.size;
    }
    fsyncSync(fd); // on disk before the snapshot directory is renamed into place
  } finally {
    closeSync(pagemap);
    closeSync(fd);
  }
  return { size: fileBase, written, untouchedPages, zeroPages, extents, checksum: sum.hex() };
}

/**
 * Checks a memory file already mapped as `memory` against its manifest entry: hashes the listed data
 * extents through the mapping (reading only pages that hold data; they stay mapped for the guest).
 * Returns the checksum found.
 */
export function memoryChecksum(
  memory: GuestMemory,
  extents: ReadonlyArray<readonly [number, number]>,
): string {
  const regions = memory.descriptors;
  const bases = regionFileOffsets(regions);
  const sum = new Checksum();
  let k = 0;
  for (const [at, len] of extents) {
    while (k + 1 < regions.length && at >= bases[k + 1]!) k++;
    sum.add(memory.slice(regions[k]!.gpa + (at - bases[k]!), len));
  }
  return sum.hex();
}

/** Where each region starts in the memory file: the sizes before it, summed. */
export function regionFileOffsets(ranges: ReadonlyArray<{ size: number }>): number[] {
  let at = 0;
  return ranges.map((r) => {
    const offset = at;
    at += r.size;
    return offset;
  });
}
