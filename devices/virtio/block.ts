/**
 * virtio-blk back-end on a raw image file: reads, writes, flush, GET_ID, discard and write-zeroes, on
 * one request queue. Guest buffers are handed to pread/pwrite as views of guest RAM (no copy), except
 * with O_DIRECT, where an aligned bounce buffer stands between (guest buffers need not be aligned).
 *
 * The image: its size must be a whole number of 512-byte sectors (the capacity); it is locked with an
 * open file description lock (fcntl F_OFD_SETLK: a write lock, or a read lock for a read-only disk, the
 * kind of lock QEMU also takes), so a second VM, or a second opener in this process, is refused with
 * the path named. DISCARD punches holes (FALLOC_FL_PUNCH_HOLE | KEEP_SIZE), WRITE_ZEROES punches too when
 * the driver allows unmapping and uses FALLOC_FL_ZERO_RANGE otherwise (writing zeroes where the file
 * system has no ZERO_RANGE): a sparse image stays sparse.
 *
 * Every request is checked: sector ranges against the capacity, data lengths in whole sectors, writes
 * on a read-only disk, the header and status byte present. A bad request completes with IOERR (UNSUPP for
 * an unknown type); a refused chain with used length 0. Nothing a guest sends throws.
 *
 * Threads: run by the device's worker (tests run it in-line). `counters` are words of a
 * SharedArrayBuffer the VMM thread can read at any time.
 */
import { toArrayBuffer } from "bun:ffi";
import { closeSync, fstatSync } from "node:fs";
import { EAGAIN, ERRNO } from "../../ffi/errno-names.ts";
import {
  cString,
  errno,
  libc,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MAP_PRIVATE,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
} from "../../ffi/libc.ts";
import {
  F_OFD_GETLK,
  F_OFD_SETLK,
  F_RDLCK,
  F_UNLCK,
  F_WRLCK,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  FLOCK_L_PID,
  FLOCK_L_TYPE,
  libcFile,
  O_DIRECT,
  wholeFileFlock,
} from "../../ffi/libc-file.ts";
import {
  VIRTIO_BLK_CONFIG_LAYOUT,
  VIRTIO_BLK_DISCARD_WRITE_ZEROES_LAYOUT,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_OUTHDR_LAYOUT,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_SECTOR_SIZE,
  VIRTIO_BLK_STATUS_SIZE,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
  VIRTIO_ID_BLOCK,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "../../ffi/virtio-layouts.ts";
import { setField, viewOf } from "../../src/arch/x86_64/struct-layout.ts";
import { BunvmmError } from "../../src/errors.ts";
import type { GuestMemory } from "../../src/memory/guest-memory.ts";
import { LibcError } from "../../src/sys/libc-error.ts";
import type { VirtioDeviceInfo } from "./mmio-transport.ts";
import { type Chain, type GuestBuffer, gather, type SplitQueue, splitBuffers, totalLength } from "./queue.ts";

export interface BlockOptions {
  readonly path: string;
  readonly readOnly?: boolean;
  /** Open with O_DIRECT (no host page cache). */
  readonly direct?: boolean;
  /** The serial GET_ID returns (at most 20 bytes; NUL-padded). Default: empty. */
  readonly serial?: string;
  /** QueueNumMax of the request queue. Default 256. */
  readonly queueSize?: number;
}

export const BLOCK_DEFAULT_QUEUE_SIZE = 256;
/** The request queue's index. */
export const BLOCK_REQUEST_QUEUE = 0;
/** Logical block size advertised (VIRTIO_BLK_F_BLK_SIZE). */
const BLOCK_SIZE = VIRTIO_BLK_SECTOR_SIZE;
/** Discard granularity advertised, in sectors: one 4 KiB file-system block, so punched holes free space. */
const DISCARD_ALIGNMENT_SECTORS = 8;
/** One range per DISCARD / WRITE_ZEROES request (what we advertise in max_*_seg). */
const MAX_RANGE_SEGMENTS = 1;
/** The largest value of a u32 config field. */
const U32_MAX = 0xffff_ffff;
/** The chain's header and status byte take these descriptors; seg_max counts only data segments. */
const NON_DATA_SEGMENTS = 2;
/**
 * Size of the O_DIRECT bounce buffer, a multiple of any logical block size. It is mmap'd, so page
 * aligned, which satisfies O_DIRECT's address alignment on every device; offsets and lengths are whole
 * 512-byte sectors (a disk with 4 KiB logical blocks would need requests checked for that too).
 */
const BOUNCE_BYTES = 1 << 20;
/** Bytes written per pwrite when zeroing by hand. */
const ZERO_CHUNK = 1 << 16;

/** Counter words of `BlockBackend.counters`. */
export const BLK_READ_OPS = 0;
export const BLK_READ_BYTES = 1;
export const BLK_WRITE_OPS = 2;
export const BLK_WRITE_BYTES = 3;
export const BLK_FLUSH_OPS = 4;
export const BLK_DISCARD_OPS = 5;
export const BLK_BAD_REQUESTS = 6;
const BLK_COUNTERS = 7;

const H = VIRTIO_BLK_OUTHDR_LAYOUT.fields;
const EACCES = ERRNO.EACCES![0];
/** fallocate's "this file system cannot" (EOPNOTSUPP, the same number as ENOTSUP on Linux). */
const EOPNOTSUPP = ERRNO.ENOTSUP![0];
const S = VIRTIO_BLK_DISCARD_WRITE_ZEROES_LAYOUT;

/** The lock conflict message, with what F_OFD_GETLK could tell about the holder. */
function lockedError(path: string, fd: number): BunvmmError {
  const probe = wholeFileFlock(F_WRLCK);
  let who = "another process or another open of it in this one";
  if (libcFile.fcntl(fd, F_OFD_GETLK, probe) === 0) {
    const v = viewOf(probe);
    const type = v.getInt16(FLOCK_L_TYPE, true);
    const pid = v.getInt32(FLOCK_L_PID, true);
    const kind = type === F_RDLCK ? "a read lock" : "a write lock";
    // OFD locks do not belong to a process: the kernel reports pid -1 for them. A classic POSIX lock
    // (F_SETLK) reports its owner.
    if (type !== F_UNLCK) who = pid > 0 ? `process ${pid} (${kind})` : `another process (${kind})`;
  }
  return new BunvmmError("refused", `disk image ${path} is locked by ${who}: is another VM using it?`);
}

/**
 * An image one thread opened and locked (BlockBackend.open), described so that a back-end in another
 * thread of the same process can serve it (BlockBackend.adopt): fds are per process, not per thread.
 */
export interface OpenedImage {
  readonly path: string;
  readonly fd: number;
  readonly capacity: number;
  readonly readOnly: boolean;
  readonly direct: boolean;
  readonly serial: string;
  readonly queueSize: number;
}

export class BlockBackend {
  /** Counter words (BLK_*), readable from any thread. */
  readonly counters: BigInt64Array;
  readonly info: VirtioDeviceInfo;
  private bounce: { addr: number; bytes: Uint8Array } | null = null;
  private closed = false;

  private constructor(
    readonly path: string,
    readonly fd: number,
    /** Capacity in 512-byte sectors. */
    readonly capacity: number,
    readonly readOnly: boolean,
    readonly direct: boolean,
    private readonly serial: Uint8Array,
    readonly queueSize: number,
    /** False for an adopted image: the opener keeps the fd (and its lock) and closes it. */
    private readonly ownsFd = true,
    counters = new SharedArrayBuffer(BLK_COUNTERS * BigInt64Array.BYTES_PER_ELEMENT),
  ) {
    this.info = BlockBackend.deviceInfo(capacity, readOnly, queueSize);
    this.counters = new BigInt64Array(counters, 0, BLK_COUNTERS);
  }

  /** This image as another thread's back-end adopts it. */
  get opened(): OpenedImage {
    return {
      path: this.path,
      fd: this.fd,
      capacity: this.capacity,
      readOnly: this.readOnly,
      direct: this.direct,
      serial: new TextDecoder().decode(this.serial),
      queueSize: this.queueSize,
    };
  }

  /**
   * A back-end over an image another thread of this process opened: it does not close the fd (the
   * opener does, once this back-end's thread is gone). Counters go to the first BLK_* words of
   * `counters` when given.
   */
  static adopt(image: OpenedImage, counters?: SharedArrayBuffer): BlockBackend {
    return new BlockBackend(
      image.path,
      image.fd,
      image.capacity,
      image.readOnly,
      image.direct,
      new TextEncoder().encode(image.serial),
      image.queueSize,
      false,
      counters,
    );
  }

  /**
   * Opens and locks the image. @throws {LibcError} when it cannot be opened, {BunvmmError} when its size
   * is not whole sectors, the serial is too long, or another opener holds the lock.
   */
  static open(options: BlockOptions): BlockBackend {
    const { path } = options;
    const readOnly = options.readOnly ?? false;
    const direct = options.direct ?? false;
    const serial = new TextEncoder().encode(options.serial ?? "");
    if (serial.length > VIRTIO_BLK_ID_BYTES)
      throw new BunvmmError(
        "input",
        `disk serial "${options.serial}" is ${serial.length} bytes; the most is ${VIRTIO_BLK_ID_BYTES}`,
      );
    const flags = (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);
    const fd = libcFile.open(cString(path), flags, 0);
    if (fd < 0) throw new LibcError(`open disk image ${path}`, errno());
    try {
      if (libcFile.fcntl(fd, F_OFD_SETLK, wholeFileFlock(readOnly ? F_RDLCK : F_WRLCK)) !== 0) {
        const e = errno();
        if (e === EAGAIN || e === EACCES) throw lockedError(path, fd);
        throw new LibcError(`fcntl(F_OFD_SETLK) on disk image ${path}`, e);
      }
      const size = fstatSync(fd).size;
      if (size % VIRTIO_BLK_SECTOR_SIZE !== 0) {
        throw new BunvmmError(
          "input",
          `disk image ${path} is ${size} bytes, not a whole number of ${VIRTIO_BLK_SECTOR_SIZE}-byte sectors`,
        );
      }
      return new BlockBackend(
        path,
        fd,
        size / VIRTIO_BLK_SECTOR_SIZE,
        readOnly,
        direct,
        serial,
        options.queueSize ?? BLOCK_DEFAULT_QUEUE_SIZE,
      );
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** The transport description: features and the config space for a disk of `capacity` sectors. */
  static deviceInfo(capacity: number, readOnly: boolean, queueSize: number): VirtioDeviceInfo {
    const bit = (n: number) => 1n << BigInt(n);
    let features =
      bit(VIRTIO_BLK_F_SEG_MAX) |
      bit(VIRTIO_BLK_F_BLK_SIZE) |
      bit(VIRTIO_BLK_F_FLUSH) |
      bit(VIRTIO_RING_F_EVENT_IDX) |
      bit(VIRTIO_RING_F_INDIRECT_DESC);
    features |= readOnly ? bit(VIRTIO_BLK_F_RO) : bit(VIRTIO_BLK_F_DISCARD) | bit(VIRTIO_BLK_F_WRITE_ZEROES);
    const L = VIRTIO_BLK_CONFIG_LAYOUT;
    const config = new Uint8Array(L.size);
    const v = viewOf(config);
    const maxRange = Math.min(capacity, U32_MAX);
    setField(v, 0, L.fields.capacity, capacity);
    setField(v, 0, L.fields.seg_max, queueSize - NON_DATA_SEGMENTS);
    setField(v, 0, L.fields.blk_size, BLOCK_SIZE);
    setField(v, 0, L.fields.max_discard_sectors, maxRange);
    setField(v, 0, L.fields.max_discard_seg, MAX_RANGE_SEGMENTS);
    setField(v, 0, L.fields.discard_sector_alignment, DISCARD_ALIGNMENT_SECTORS);
    setField(v, 0, L.fields.max_write_zeroes_sectors, maxRange);
    setField(v, 0, L.fields.max_write_zeroes_seg, MAX_RANGE_SEGMENTS);
    setField(v, 0, L.fields.write_zeroes_may_unmap, 1);
    return {
      deviceId: VIRTIO_ID_BLOCK,
      features,
      queues: 1,
      queueNumMax: queueSize,
      config,
      configFields: Object.values(L.fields),
    };
  }

  counter(word: number): number {
    return Number(Atomics.load(this.counters, word));
  }
  private count(word: number, n = 1): void {
    Atomics.add(this.counters, word, BigInt(n));
  }

  /**
   * Serves every available request of `queue`. Returns true when the driver wants an interrupt (the
   * used-buffer bit is already set in InterruptStatus; the caller raises the line).
   */
  processQueue(queue: SplitQueue, memory: GuestMemory): boolean {
    // A driver that did not accept FLUSH cannot ask for durability, so every write is written through
    // (fdatasync before completion), as QEMU does and as the spec expects of a device without a
    // writeback cache the driver controls.
    const writeThrough = !queue.state.negotiated(VIRTIO_BLK_F_FLUSH);
    for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
      queue.pushUsed(chain, this.serve(chain, memory, writeThrough));
    }
    return queue.signalIfNeeded();
  }

  /** Runs one request; returns the bytes written into its device-writable buffers. */
  private serve(chain: Chain, memory: GuestMemory, writeThrough: boolean): number {
    const fail = (status: number): number => {
      if (status !== VIRTIO_BLK_S_OK) this.count(BLK_BAD_REQUESTS);
      const last = chain.writable[chain.writable.length - 1];
      if (!last) return 0;
      memory.slice(last.addr + last.len - VIRTIO_BLK_STATUS_SIZE, VIRTIO_BLK_STATUS_SIZE)[0] = status;
      return VIRTIO_BLK_STATUS_SIZE;
    };
    if (chain.error !== null) {
      fail(VIRTIO_BLK_S_IOERR);
      return 0; // a refused chain: used length 0, whatever status byte we could reach
    }
    const readBytes = totalLength(chain.readable);
    const writeBytes = totalLength(chain.writable);
    if (readBytes < VIRTIO_BLK_OUTHDR_LAYOUT.size || writeBytes < VIRTIO_BLK_STATUS_SIZE)
      return fail(VIRTIO_BLK_S_IOERR);
    const [headerBufs, readData] = splitBuffers(chain.readable, VIRTIO_BLK_OUTHDR_LAYOUT.size);
    const header = viewOf(gather(memory, headerBufs));
    const type = header.getUint32(H.type.offset, true);
    const sector = header.getBigUint64(H.sector.offset, true);
    const [writeData, statusBufs] = splitBuffers(chain.writable, writeBytes - VIRTIO_BLK_STATUS_SIZE);
    const status = statusBufs[0]!;
    const finish = (s: number, dataBytes: number): number => {
      if (s !== VIRTIO_BLK_S_OK) this.count(BLK_BAD_REQUESTS);
      memory.slice(status.addr, VIRTIO_BLK_STATUS_SIZE)[0] = s;
      return (s === VIRTIO_BLK_S_OK ? dataBytes : 0) + VIRTIO_BLK_STATUS_SIZE;
    };
    switch (type) {
      case VIRTIO_BLK_T_IN: {
        const len = totalLength(writeData);
        if (readData.length > 0 || !this.inRange(sector, len)) return finish(VIRTIO_BLK_S_IOERR, 0);
        const ok = this.transfer(memory, writeData, Number(sector) * VIRTIO_BLK_SECTOR_SIZE, "read");
        if (ok) {
          this.count(BLK_READ_OPS);
          this.count(BLK_READ_BYTES, len);
        }
        return finish(ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR, len);
      }
      case VIRTIO_BLK_T_OUT: {
        const len = totalLength(readData);
        if (this.readOnly || writeData.length > 0 || !this.inRange(sector, len))
          return finish(VIRTIO_BLK_S_IOERR, 0);
        const ok =
          this.transfer(memory, readData, Number(sector) * VIRTIO_BLK_SECTOR_SIZE, "write") &&
          (!writeThrough || libcFile.fdatasync(this.fd) === 0);
        if (ok) {
          this.count(BLK_WRITE_OPS);
          this.count(BLK_WRITE_BYTES, len);
        }
        return finish(ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR, 0);
      }
      case VIRTIO_BLK_T_FLUSH: {
        if (this.readOnly) return finish(VIRTIO_BLK_S_OK, 0);
        const ok = libcFile.fsync(this.fd) === 0;
        if (ok) this.count(BLK_FLUSH_OPS);
        return finish(ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR, 0);
      }
      case VIRTIO_BLK_T_GET_ID: {
        if (totalLength(writeData) < VIRTIO_BLK_ID_BYTES) return finish(VIRTIO_BLK_S_IOERR, 0);
        const id = new Uint8Array(VIRTIO_BLK_ID_BYTES);
        id.set(this.serial);
        let at = 0;
        for (const b of writeData) {
          if (at >= id.length) break;
          const n = Math.min(b.len, id.length - at);
          memory.write(b.addr, id.subarray(at, at + n));
          at += n;
        }
        return finish(VIRTIO_BLK_S_OK, VIRTIO_BLK_ID_BYTES);
      }
      case VIRTIO_BLK_T_DISCARD:
      case VIRTIO_BLK_T_WRITE_ZEROES:
        return finish(this.ranges(type, gather(memory, readData), writeData.length), 0);
      default:
        return finish(VIRTIO_BLK_S_UNSUPP, 0);
    }
  }

  /** True when `bytes` from `sector` are whole sectors inside the disk. */
  private inRange(sector: bigint, bytes: number): boolean {
    if (bytes % VIRTIO_BLK_SECTOR_SIZE !== 0) return false;
    return sector + BigInt(bytes / VIRTIO_BLK_SECTOR_SIZE) <= BigInt(this.capacity);
  }

  /** DISCARD or WRITE_ZEROES over the ranges in `segments`. Returns the status. */
  private ranges(type: number, segments: Uint8Array, extraWritable: number): number {
    if (this.readOnly || extraWritable > 0) return VIRTIO_BLK_S_IOERR;
    const count = segments.length / S.size;
    if (!Number.isInteger(count) || count === 0 || count > MAX_RANGE_SEGMENTS) return VIRTIO_BLK_S_IOERR;
    const v = viewOf(segments);
    for (let i = 0; i < count; i++) {
      const sector = v.getBigUint64(i * S.size + S.fields.sector.offset, true);
      const sectors = v.getUint32(i * S.size + S.fields.num_sectors.offset, true);
      const flags = v.getUint32(i * S.size + S.fields.flags.offset, true);
      const known = type === VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;
      if (flags & ~known) return VIRTIO_BLK_S_UNSUPP;
      if (!this.inRange(sector, sectors * VIRTIO_BLK_SECTOR_SIZE)) return VIRTIO_BLK_S_IOERR;
      const offset = Number(sector) * VIRTIO_BLK_SECTOR_SIZE;
      const len = sectors * VIRTIO_BLK_SECTOR_SIZE;
      if (len === 0) continue;
      const punch = type === VIRTIO_BLK_T_DISCARD || (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0;
      if (!this.zero(offset, len, punch)) return VIRTIO_BLK_S_IOERR;
      this.count(BLK_DISCARD_OPS);
    }
    return VIRTIO_BLK_S_OK;
  }

  /** Makes [offset, offset+len) read as zeroes: a hole, a zeroed range, or written zeroes. */
  private zero(offset: number, len: number, punch: boolean): boolean {
    const mode = punch
      ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
      : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
    if (libcFile.fallocate(this.fd, mode, offset, len) === 0) return true;
    if (errno() !== EOPNOTSUPP) return false;
    return this.writeZeroes(offset, len); // the file system cannot do it in place
  }

  private writeZeroes(offset: number, len: number): boolean {
    const zeroes = this.direct
      ? this.bounceBuffer().subarray(0, ZERO_CHUNK).fill(0)
      : new Uint8Array(ZERO_CHUNK);
    for (let at = 0; at < len; at += ZERO_CHUNK) {
      const n = Math.min(ZERO_CHUNK, len - at);
      if (Number(libcFile.pwrite(this.fd, zeroes, n, offset + at)) !== n) return false;
    }
    return true;
  }

  private bounceBuffer(): Uint8Array {
    if (!this.bounce) {
      const addr = libc.mmap(0, BOUNCE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (BigInt(addr) === MAP_FAILED) throw new LibcError("mmap of the O_DIRECT bounce buffer", errno());
      this.bounce = {
        addr: Number(addr),
        bytes: new Uint8Array(toArrayBuffer(Number(addr), 0, BOUNCE_BYTES)),
      };
    }
    return this.bounce.bytes;
  }

  /** Moves bytes between the image at `offset` and the guest buffers; false on a host I/O error. */
  private transfer(
    memory: GuestMemory,
    buffers: readonly GuestBuffer[],
    offset: number,
    dir: "read" | "write",
  ): boolean {
    if (this.direct) return this.transferDirect(memory, buffers, offset, dir);
    let at = offset;
    for (const b of buffers) {
      const view = memory.slice(b.addr, b.len);
      const n =
        dir === "read" ? libcFile.pread(this.fd, view, b.len, at) : libcFile.pwrite(this.fd, view, b.len, at);
      if (Number(n) !== b.len) return false;
      at += b.len;
    }
    return true;
  }

  /** O_DIRECT: whole sectors through the page-aligned bounce buffer, at most BOUNCE_BYTES at a time. */
  private transferDirect(
    memory: GuestMemory,
    buffers: readonly GuestBuffer[],
    offset: number,
    dir: "read" | "write",
  ): boolean {
    const bounce = this.bounceBuffer();
    const total = totalLength(buffers);
    let rest = [...buffers];
    for (let done = 0; done < total; ) {
      const n = Math.min(BOUNCE_BYTES, total - done);
      const [now, later] = splitBuffers(rest, n);
      rest = later;
      if (dir === "write") {
        bounce.set(gather(memory, now));
        if (Number(libcFile.pwrite(this.fd, bounce, n, offset + done)) !== n) return false;
      } else {
        if (Number(libcFile.pread(this.fd, bounce, n, offset + done)) !== n) return false;
        let at = 0;
        for (const b of now) {
          memory.write(b.addr, bounce.subarray(at, at + b.len));
          at += b.len;
        }
      }
      done += n;
    }
    return true;
  }

  /** Releases the lock (with the fd, unless adopted) and the bounce buffer. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsFd) closeSync(this.fd);
    if (this.bounce) libc.munmap(this.bounce.addr, BOUNCE_BYTES);
    this.bounce = null;
  }
}
