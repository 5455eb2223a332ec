/**
 * virtio-blk on real image files, driven from TypeScript through the transport and the split ring in
 * real (mmap'd) guest memory: read, write, flush, GET_ID, ranges, read-only, discard and write-zeroes
 * on a sparse image, O_DIRECT, and the OFD lock.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BLK_BAD_REQUESTS,
  BLK_DISCARD_OPS,
  BLK_FLUSH_OPS,
  BLK_READ_BYTES,
  BLK_READ_OPS,
  BLK_WRITE_BYTES,
  BLK_WRITE_OPS,
  BlockBackend,
} from "../../../devices/virtio/block.ts";
import {
  VIRTIO_BLK_CONFIG_LAYOUT,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_OUTHDR_LAYOUT,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_INTERRUPT_STATUS,
} from "../../../ffi/virtio-layouts.ts";
import { BunvmmError } from "../../../src/errors.ts";
import { TestDriver } from "../../helpers/virtio-driver.ts";

const SECTOR = 512;
const MIB = 1 << 20;
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bunvmm-virtio-blk-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** An image whose sector n is filled with byte (n & 0xff). */
function patternImage(sectors: number, name = "disk.img"): string {
  const path = join(dir, name);
  const bytes = new Uint8Array(sectors * SECTOR);
  for (let s = 0; s < sectors; s++) bytes.fill(s & 0xff, s * SECTOR, (s + 1) * SECTOR);
  writeFileSync(path, bytes);
  return path;
}

/** Allocated bytes of a file (st_blocks counts 512-byte units, whatever the file system's block). */
function allocated(path: string): number {
  return statSync(path).blocks * 512;
}

class BlkRig {
  readonly driver: TestDriver;
  readonly queue;
  constructor(readonly disk: BlockBackend) {
    this.driver = new TestDriver(disk.info);
    expect(this.driver.init() & VIRTIO_CONFIG_S_DRIVER_OK).toBe(VIRTIO_CONFIG_S_DRIVER_OK);
    this.queue = this.driver.queue(0);
  }

  header(type: number, sector: number): number {
    const at = this.driver.alloc(VIRTIO_BLK_OUTHDR_LAYOUT.size);
    const v = new DataView(this.driver.memory.slice(at, 16).buffer, at, 16);
    v.setUint32(VIRTIO_BLK_OUTHDR_LAYOUT.fields.type.offset, type, true);
    v.setBigUint64(VIRTIO_BLK_OUTHDR_LAYOUT.fields.sector.offset, BigInt(sector), true);
    return at;
  }

  /** Posts one request, runs the device, returns the status byte, used length and data address. */
  request(
    type: number,
    sector: number,
    data: { len: number; write?: boolean; fill?: Uint8Array } | null,
    opts: { indirect?: boolean } = {},
  ): { status: number; len: number; data: number } {
    const d = this.driver;
    const hdr = this.header(type, sector);
    const descs = [{ addr: hdr, len: VIRTIO_BLK_OUTHDR_LAYOUT.size }];
    let dataAt = 0;
    if (data) {
      dataAt = d.alloc(data.len);
      if (data.fill) d.memory.write(dataAt, data.fill);
      descs.push({ addr: dataAt, len: data.len, write: data.write } as never);
    }
    const status = d.alloc(1);
    d.memory.slice(status, 1)[0] = 0xee;
    descs.push({ addr: status, len: 1, write: true } as never);
    const before = d.usedIdx(0);
    d.post(0, descs, opts);
    this.disk.processQueue(this.queue, d.memory);
    expect(d.usedIdx(0)).toBe((before + 1) & 0xffff);
    const used = d.usedElem(0, before);
    return { status: d.memory.slice(status, 1)[0]!, len: used.len, data: dataAt };
  }

  close(): void {
    this.disk.close();
    this.driver.close();
  }
}

describe("virtio-blk", () => {
  test("config space: capacity, blk_size and seg_max, read at their widths", () => {
    const rig = new BlkRig(BlockBackend.open({ path: patternImage(64) }));
    try {
      const C = VIRTIO_BLK_CONFIG_LAYOUT.fields;
      expect(rig.driver.configU32(C.capacity.offset)).toBe(64);
      expect(rig.driver.configU32(C.capacity.offset + 4)).toBe(0);
      expect(rig.driver.configU32(C.blk_size.offset)).toBe(SECTOR);
      expect(rig.driver.configU32(C.seg_max.offset)).toBe(254);
      expect(rig.driver.state.badAccesses).toBe(0);
    } finally {
      rig.close();
    }
  });

  test("reads sectors into guest memory, directly and through an indirect table, and counts them", () => {
    const rig = new BlkRig(BlockBackend.open({ path: patternImage(64) }));
    try {
      const r = rig.request(VIRTIO_BLK_T_IN, 3, { len: 2 * SECTOR, write: true });
      expect(r.status).toBe(VIRTIO_BLK_S_OK);
      expect(r.len).toBe(2 * SECTOR + 1);
      const got = rig.driver.memory.read(r.data, 2 * SECTOR);
      expect(got.subarray(0, SECTOR).every((b) => b === 3)).toBe(true);
      expect(got.subarray(SECTOR).every((b) => b === 4)).toBe(true);
      const ind = rig.request(VIRTIO_BLK_T_IN, 7, { len: SECTOR, write: true }, { indirect: true });
      expect(ind.status).toBe(VIRTIO_BLK_S_OK);
      expect(rig.driver.memory.read(ind.data, SECTOR).every((b) => b === 7)).toBe(true);
      expect(rig.disk.counter(BLK_READ_OPS)).toBe(2);
      expect(rig.disk.counter(BLK_READ_BYTES)).toBe(3 * SECTOR);
      expect(rig.driver.read(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_VRING).toBe(
        VIRTIO_MMIO_INT_VRING,
      );
    } finally {
      rig.close();
    }
  });

  test("writes reach the image file, flush succeeds, counters follow", () => {
    const path = patternImage(64);
    const rig = new BlkRig(BlockBackend.open({ path }));
    try {
      const fill = new Uint8Array(SECTOR).fill(0xab);
      const w = rig.request(VIRTIO_BLK_T_OUT, 10, { len: SECTOR, fill });
      expect(w.status).toBe(VIRTIO_BLK_S_OK);
      expect(w.len).toBe(1);
      const f = rig.request(VIRTIO_BLK_T_FLUSH, 0, null);
      expect(f.status).toBe(VIRTIO_BLK_S_OK);
      const file = readFileSync(path);
      expect(file.subarray(10 * SECTOR, 11 * SECTOR).every((b) => b === 0xab)).toBe(true);
      expect(file.subarray(9 * SECTOR, 10 * SECTOR).every((b) => b === 9)).toBe(true);
      expect(rig.disk.counter(BLK_WRITE_OPS)).toBe(1);
      expect(rig.disk.counter(BLK_WRITE_BYTES)).toBe(SECTOR);
      expect(rig.disk.counter(BLK_FLUSH_OPS)).toBe(1);
    } finally {
      rig.close();
    }
  });

  test("GET_ID returns the serial, NUL-padded to 20 bytes", () => {
    const rig = new BlkRig(BlockBackend.open({ path: patternImage(8), serial: "bunvmm-disk-0" }));
    try {
      const r = rig.request(VIRTIO_BLK_T_GET_ID, 0, { len: 20, write: true });
      expect(r.status).toBe(VIRTIO_BLK_S_OK);
      expect(r.len).toBe(21);
      const id = rig.driver.memory.read(r.data, 20);
      expect(new TextDecoder().decode(id.subarray(0, 13))).toBe("bunvmm-disk-0");
      expect(id.subarray(13).every((b) => b === 0)).toBe(true);
    } finally {
      rig.close();
    }
  });

  test("out-of-range sectors, partial sectors and unknown types fail with IOERR/UNSUPP and are counted", () => {
    const path = patternImage(16);
    const rig = new BlkRig(BlockBackend.open({ path }));
    try {
      expect(rig.request(VIRTIO_BLK_T_IN, 16, { len: SECTOR, write: true }).status).toBe(VIRTIO_BLK_S_IOERR);
      expect(rig.request(VIRTIO_BLK_T_IN, 15, { len: 2 * SECTOR, write: true }).status).toBe(
        VIRTIO_BLK_S_IOERR,
      );
      expect(rig.request(VIRTIO_BLK_T_IN, 2 ** 53, { len: SECTOR, write: true }).status).toBe(
        VIRTIO_BLK_S_IOERR,
      );
      expect(rig.request(VIRTIO_BLK_T_OUT, 0, { len: 100 }).status).toBe(VIRTIO_BLK_S_IOERR);
      expect(rig.request(99, 0, null).status).toBe(VIRTIO_BLK_S_UNSUPP);
      expect(rig.disk.counter(BLK_BAD_REQUESTS)).toBe(5);
      expect(
        readFileSync(path)
          .subarray(0, SECTOR)
          .every((b) => b === 0),
      ).toBe(true);
    } finally {
      rig.close();
    }
  });

  test("a read-only disk offers RO and refuses writes and discards with IOERR", () => {
    const path = patternImage(16);
    const rig = new BlkRig(BlockBackend.open({ path, readOnly: true }));
    try {
      expect((rig.driver.deviceFeatures() >> BigInt(VIRTIO_BLK_F_RO)) & 1n).toBe(1n);
      const fill = new Uint8Array(SECTOR).fill(0x55);
      expect(rig.request(VIRTIO_BLK_T_OUT, 1, { len: SECTOR, fill }).status).toBe(VIRTIO_BLK_S_IOERR);
      expect(rig.request(VIRTIO_BLK_T_IN, 1, { len: SECTOR, write: true }).status).toBe(VIRTIO_BLK_S_OK);
      expect(
        readFileSync(path)
          .subarray(SECTOR, 2 * SECTOR)
          .every((b) => b === 1),
      ).toBe(true);
    } finally {
      rig.close();
    }
  });

  test("DISCARD and WRITE_ZEROES keep a sparse image sparse and read back zeroes", () => {
    const path = join(dir, "sparse.img");
    writeFileSync(path, new Uint8Array(0));
    truncateSync(path, 8 * MIB);
    const rig = new BlkRig(BlockBackend.open({ path }));
    try {
      const fill = new Uint8Array(MIB).fill(0x77);
      expect(rig.request(VIRTIO_BLK_T_OUT, 0, { len: MIB, fill }).status).toBe(VIRTIO_BLK_S_OK);
      rig.request(VIRTIO_BLK_T_FLUSH, 0, null);
      const written = allocated(path);
      expect(written).toBeGreaterThanOrEqual(MIB);
      const segment = (sector: number, sectors: number, flags: number) => {
        const b = new Uint8Array(16);
        const v = new DataView(b.buffer);
        v.setBigUint64(0, BigInt(sector), true);
        v.setUint32(8, sectors, true);
        v.setUint32(12, flags, true);
        return b;
      };
      // Discard the first half MiB, write-zeroes (unmap allowed) the second half.
      const half = MIB / 2 / SECTOR;
      expect(rig.request(VIRTIO_BLK_T_DISCARD, 0, { len: 16, fill: segment(0, half, 0) }).status).toBe(
        VIRTIO_BLK_S_OK,
      );
      expect(
        rig.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, {
          len: 16,
          fill: segment(half, half, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP),
        }).status,
      ).toBe(VIRTIO_BLK_S_OK);
      expect(allocated(path)).toBeLessThan(written / 4); // the holes freed what the write allocated
      expect(statSync(path).size).toBe(8 * MIB);
      expect(
        readFileSync(path)
          .subarray(0, MIB)
          .every((b) => b === 0),
      ).toBe(true);
      // Without UNMAP the driver wants the range kept allocated (ZERO_RANGE); it still reads zeroes.
      const dirty = new Uint8Array(MIB).fill(0x11);
      expect(rig.request(VIRTIO_BLK_T_OUT, 2048, { len: MIB, fill: dirty }).status).toBe(VIRTIO_BLK_S_OK);
      expect(
        rig.request(VIRTIO_BLK_T_WRITE_ZEROES, 0, { len: 16, fill: segment(2048, 2048, 0) }).status,
      ).toBe(VIRTIO_BLK_S_OK);
      expect(
        readFileSync(path)
          .subarray(MIB, 2 * MIB)
          .every((b) => b === 0),
      ).toBe(true);
      expect(statSync(path).size).toBe(8 * MIB);
      expect(rig.disk.counter(BLK_DISCARD_OPS)).toBe(3);
      // A range past the end, two ranges, and an unknown flag are refused.
      expect(rig.request(VIRTIO_BLK_T_DISCARD, 0, { len: 16, fill: segment(16384, 1, 0) }).status).toBe(
        VIRTIO_BLK_S_IOERR,
      );
      expect(rig.request(VIRTIO_BLK_T_DISCARD, 0, { len: 32, fill: new Uint8Array(32) }).status).toBe(
        VIRTIO_BLK_S_IOERR,
      );
      expect(rig.request(VIRTIO_BLK_T_DISCARD, 0, { len: 16, fill: segment(0, 1, 1) }).status).toBe(
        VIRTIO_BLK_S_UNSUPP,
      );
    } finally {
      rig.close();
    }
  });

  test("O_DIRECT reads and writes go through the bounce buffer, from unaligned guest buffers", () => {
    const path = patternImage(64);
    const rig = new BlkRig(BlockBackend.open({ path, direct: true }));
    try {
      rig.driver.alloc(8); // make the next data buffer not 512-aligned
      const r = rig.request(VIRTIO_BLK_T_IN, 5, { len: 3 * SECTOR, write: true });
      expect(r.status).toBe(VIRTIO_BLK_S_OK);
      expect(r.data % SECTOR).not.toBe(0);
      expect(rig.driver.memory.read(r.data + 2 * SECTOR, SECTOR).every((b) => b === 7)).toBe(true);
      const fill = new Uint8Array(SECTOR).fill(0xcd);
      expect(rig.request(VIRTIO_BLK_T_OUT, 20, { len: SECTOR, fill }).status).toBe(VIRTIO_BLK_S_OK);
      expect(
        readFileSync(path)
          .subarray(20 * SECTOR, 21 * SECTOR)
          .every((b) => b === 0xcd),
      ).toBe(true);
    } finally {
      rig.close();
    }
  });

  test("an image that is not whole sectors is refused, naming the path and size", () => {
    const path = join(dir, "odd.img");
    writeFileSync(path, new Uint8Array(1000));
    expect(() => BlockBackend.open({ path })).toThrow(
      `disk image ${path} is 1000 bytes, not a whole number of 512-byte sectors`,
    );
  });

  test("the OFD lock refuses a second opener, naming the path and the holder; closing releases it", () => {
    const path = patternImage(8);
    const first = BlockBackend.open({ path });
    let err: unknown;
    try {
      BlockBackend.open({ path });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BunvmmError);
    expect((err as Error).message).toBe(
      `disk image ${path} is locked by another process (a write lock): is another VM using it?`,
    );
    expect(() => BlockBackend.open({ path, readOnly: true })).toThrow("is locked by another process");
    first.close();
    BlockBackend.open({ path }).close();
    // Two read-only openers share the image.
    const a = BlockBackend.open({ path, readOnly: true });
    const b = BlockBackend.open({ path, readOnly: true });
    expect(() => BlockBackend.open({ path })).toThrow("(a read lock)");
    a.close();
    b.close();
  });

  test("another process holding the image is named as such (OFD locks report no pid)", async () => {
    const path = patternImage(8);
    const script = join(dir, "holder.ts");
    writeFileSync(
      script,
      `import { BlockBackend } from ${JSON.stringify(join(import.meta.dir, "../../../devices/virtio/block.ts"))};
       const d = BlockBackend.open({ path: ${JSON.stringify(path)} });
       console.log("locked");
       for await (const _ of console) break;
       d.close();`,
    );
    const child = Bun.spawn([process.execPath, script], { stdin: "pipe", stdout: "pipe" });
    try {
      const reader = child.stdout.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toContain("locked");
      expect(() => BlockBackend.open({ path })).toThrow(`disk image ${path} is locked by another process`);
    } finally {
      child.stdin.write("\n");
      child.stdin.end();
      await child.exited;
    }
    BlockBackend.open({ path }).close();
  });
});
