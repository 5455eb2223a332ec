import { describe, expect, test } from "bun:test";
import { allOnes, Bus, BusConflictError, type BusDevice } from "../../devices/bus.ts";
import { ByteQueue, createByteQueueBuffer } from "../../devices/byte-queue.ts";

class Recorder implements BusDevice {
  readonly writes: Array<[number, number, number]> = [];
  read(offset: number): number {
    return offset;
  }
  write(offset: number, size: number, value: number): void {
    this.writes.push([offset, size, value]);
  }
}

describe("Bus", () => {
  test("routes by range and hands devices offsets, not addresses", () => {
    const bus = new Bus("pio");
    const a = new Recorder();
    const b = new Recorder();
    bus.insert(0x3f8, 8, a, "a");
    bus.insert(0x60, 1, b, "b", 0);
    bus.insert(0x64, 1, b, "b", 4);
    expect(bus.read(0x3fa, 1)).toBe(2);
    expect(bus.write(0x64, 1, 0xfe)).toBe(true);
    expect(b.writes).toEqual([[4, 1, 0xfe]]);
    expect(bus.read(0x61, 1)).toBeUndefined();
    expect(bus.write(0x400, 1, 0)).toBe(false);
  });

  test("refuses overlapping ranges, naming both", () => {
    const bus = new Bus("mmio");
    bus.insert(0x1000, 0x100, new Recorder(), "first");
    expect(() => bus.insert(0x10f0, 0x20, new Recorder(), "second")).toThrow(
      new BusConflictError("mmio range 0x10f0+0x20 for second overlaps first"),
    );
  });

  test.each([
    [1, 0xff],
    [2, 0xffff],
    [4, 0xffff_ffff],
    [8, 0xffff_ffff],
  ] as const)("allOnes(%i)", (size, value) => expect(allOnes(size)).toBe(value));
});

describe("ByteQueue", () => {
  test("keeps order, drops and counts when full, and wraps", () => {
    const q = new ByteQueue(createByteQueueBuffer(4));
    for (const b of [1, 2, 3, 4]) expect(q.push(b)).toBe(true);
    expect(q.push(5)).toBe(false);
    expect(q.dropped).toBe(1);
    expect([...q.drain()]).toEqual([1, 2, 3, 4]);
    for (let round = 0; round < 10; round++) {
      q.push(round);
      q.push(round + 100);
      expect(q.shift()).toBe(round);
      expect(q.shift()).toBe(round + 100);
    }
    expect(q.shift()).toBe(-1);
    expect(q.readable).toBe(false);
  });

  test("waitForCommit resolves once a byte is published after the counter was read", async () => {
    const q = new ByteQueue(createByteQueueBuffer(16));
    const seen = q.commits;
    const waiting = q.waitForCommit(seen, 5_000);
    q.push(42);
    await waiting;
    expect(q.commits).toBe(seen + 1);
  });

  test("several producer threads: every byte arrives once, per-producer order kept", async () => {
    const buffer = createByteQueueBuffer(1 << 16);
    const PRODUCERS = 3;
    const PER = 5000;
    const src = `
      import { ByteQueue } from "${import.meta.dir}/../../devices/byte-queue.ts";
      self.onmessage = (e) => { const q = new ByteQueue(e.data.buffer);
        for (let i = 0; i < ${PER}; i++) q.push((e.data.id << 6) | (i % 64));
        postMessage("done"); };`;
    const url = URL.createObjectURL(new Blob([src], { type: "application/typescript" }));
    const workers = Array.from({ length: PRODUCERS }, (_, id) => {
      const w = new Worker(url);
      const done = new Promise((r) => (w.onmessage = r));
      w.postMessage({ buffer, id });
      return done.then(() => w.terminate());
    });
    await Promise.all(workers);
    const bytes = [...new ByteQueue(buffer).drain()];
    expect(bytes).toHaveLength(PRODUCERS * PER);
    for (let id = 0; id < PRODUCERS; id++) {
      const mine = bytes.filter((b) => b >> 6 === id).map((b) => b & 63);
      expect(mine).toEqual(Array.from({ length: PER }, (_, i) => i % 64));
    }
  });
});
