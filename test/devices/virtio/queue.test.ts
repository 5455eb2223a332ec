/**
 * The split virtqueue against a hostile driver: every class of bad chain is refused with a reason and
 * the device carries on; ring-breaking indices set NEEDS_RESET; EVENT_IDX and NO_INTERRUPT decide the
 * interrupt; a reset between pop and completion publishes nothing.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BLK_BAD_REQUESTS, BlockBackend } from "../../../devices/virtio/block.ts";
import { Q_NEXT_AVAIL } from "../../../devices/virtio/mmio-transport.ts";
import { RngBackend } from "../../../devices/virtio/rng.ts";
import {
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_T_IN,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_STATUS,
  VIRTIO_RING_F_EVENT_IDX,
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_AVAIL_RING,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_USED_RING,
} from "../../../ffi/virtio-layouts.ts";
import { RAM_SIZE, TestDriver, VERSION_1 } from "../../helpers/virtio-driver.ts";

const SIZE = 16;
const W = VRING_DESC_F_WRITE;
const N = VRING_DESC_F_NEXT;
const I = VRING_DESC_F_INDIRECT;

function rngInfo() {
  const r = new RngBackend();
  r.close();
  return r.info;
}

/** A live device with queue 0 of SIZE entries; `features` defaults to all offered. */
function live(features?: bigint): TestDriver {
  const d = new TestDriver(rngInfo());
  d.init({ features, queueSize: SIZE });
  return d;
}

/** Writes raw descriptors into the ring's table, publishes `head`, pops: the chain's error. */
function popRaw(d: TestDriver, descs: [addr: number, len: number, flags: number, next: number][], head = 0) {
  const table = d.ringAddresses(0).desc;
  descs.forEach(([addr, len, flags, next], i) => {
    d.writeDesc(table, i, addr, len, flags, next);
  });
  d.publish(0, head);
  return d.queue(0).pop();
}

describe("split virtqueue: hostile chains", () => {
  const buf = 0x30_0000;
  const cases: [string, (d: TestDriver) => ReturnType<typeof popRaw>, RegExp][] = [
    [
      "a loop",
      (d) =>
        popRaw(d, [
          [buf, 8, N, 1],
          [buf, 8, N, 0],
        ]),
      /loops/,
    ],
    ["a next index outside the table", (d) => popRaw(d, [[buf, 8, N, SIZE]]), /outside a table of 16/],
    ["a buffer outside guest RAM", (d) => popRaw(d, [[RAM_SIZE - 4, 8, 0, 0]]), /outside guest RAM/],
    ["an address above 2^53", (d) => popRaw(d, [[2 ** 53 + 2, 8, 0, 0]]), /buffer address/],
    ["a zero-length buffer", (d) => popRaw(d, [[buf, 0, 0, 0]]), /zero-length/],
    [
      "readable after writable",
      (d) =>
        popRaw(d, [
          [buf, 8, W | N, 1],
          [buf, 8, 0, 0],
        ]),
      /readable buffer after/,
    ],
    ["an indirect table of 0 bytes", (d) => popRaw(d, [[buf, 0, I, 0]]), /indirect table of 0 bytes/],
    ["an indirect table of 24 bytes", (d) => popRaw(d, [[buf, 24, I, 0]]), /indirect table of 24 bytes/],
    [
      "an indirect table outside RAM",
      (d) => popRaw(d, [[RAM_SIZE - 16, 32, I, 0]]),
      /indirect table outside/,
    ],
    ["an indirect descriptor with NEXT", (d) => popRaw(d, [[buf, 16, I | N, 1]]), /with NEXT set/],
    [
      "a nested indirect table",
      (d) => {
        d.writeDesc(buf, 0, buf + 0x100, 16, I, 0);
        return popRaw(d, [[buf, 16, I, 0]]);
      },
      /inside an indirect table/,
    ],
    [
      "a loop inside an indirect table",
      (d) => {
        d.writeDesc(buf, 0, buf + 0x100, 8, N, 1);
        d.writeDesc(buf, 1, buf + 0x100, 8, N, 0);
        return popRaw(d, [[buf, 32, I, 0]]);
      },
      /loops/,
    ],
  ];
  for (const [name, make, reason] of cases) {
    test(`refuses ${name}, and the next good chain still works`, () => {
      const d = live();
      try {
        const bad = make(d);
        expect(bad?.error).toMatch(reason);
        expect(d.queue(0).pushUsed(bad!, 0)).toBe(true);
        expect(d.usedElem(0, 0)).toEqual({ id: 0, len: 0 });
        const good = popRaw(d, [[buf, 8, W, 0]]);
        expect(good?.error).toBeNull();
        expect(good?.writable).toEqual([{ addr: buf, len: 8 }]);
        expect(d.state.live).toBe(true);
      } finally {
        d.close();
      }
    });
  }

  test("refuses an indirect descriptor when INDIRECT_DESC was not negotiated", () => {
    const d = live(VERSION_1);
    try {
      expect(popRaw(d, [[0x30_0000, 16, I, 0]])?.error).toMatch(/INDIRECT_DESC not negotiated/);
    } finally {
      d.close();
    }
  });

  test("a bad chain on virtio-blk completes with IOERR in its status byte and used length 0", () => {
    const dir = mkdtempSync(join(tmpdir(), "bunvmm-q-"));
    writeFileSync(join(dir, "d.img"), new Uint8Array(4096));
    const disk = BlockBackend.open({ path: join(dir, "d.img") });
    const d = new TestDriver(disk.info);
    try {
      d.init({ queueSize: SIZE });
      const hdr = d.alloc(16);
      d.memory.writeU32(hdr, VIRTIO_BLK_T_IN);
      const status = d.alloc(1);
      const table = d.ringAddresses(0).desc;
      // header, then a data buffer of length 0 (refused), then the status byte.
      d.writeDesc(table, 0, hdr, 16, N, 1);
      d.writeDesc(table, 1, status, 1, W | N, 2);
      d.writeDesc(table, 2, status + 16, 0, W, 0);
      d.publish(0, 0);
      disk.processQueue(d.queue(0), d.memory);
      expect(d.usedIdx(0)).toBe(1);
      expect(d.usedElem(0, 0)).toEqual({ id: 0, len: 0 });
      expect(d.memory.read(status, 1)[0]).toBe(VIRTIO_BLK_S_IOERR);
      expect(disk.counter(BLK_BAD_REQUESTS)).toBe(1);
    } finally {
      d.close();
      disk.close();
      rmSync(dir, { recursive: true });
    }
  });
});

describe("split virtqueue: ring rules", () => {
  test("an avail index more than the queue size ahead sets NEEDS_RESET and stops the queue", () => {
    const d = live();
    try {
      const q = d.queue(0);
      d.publish(0, 0, SIZE + 1);
      expect(q.pop()).toBeNull();
      expect(d.read(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET).toBe(VIRTIO_CONFIG_S_NEEDS_RESET);
      expect(d.read(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(VIRTIO_MMIO_INT_CONFIG);
      expect(d.state.needsResetEvents).toBe(1);
      expect(q.signalIfNeeded()).toBe(true); // the config-change interrupt goes out once
      expect(q.signalIfNeeded()).toBe(false);
      expect(q.pop()).toBeNull();
    } finally {
      d.close();
    }
  });

  test("a head index outside the table sets NEEDS_RESET", () => {
    const d = live();
    try {
      d.publish(0, SIZE);
      expect(d.queue(0).pop()).toBeNull();
      expect(d.state.needsResetEvents).toBe(1);
      expect(d.state.queueLoad(0, Q_NEXT_AVAIL)).toBe(1);
    } finally {
      d.close();
    }
  });

  test("indices wrap at 2^16", () => {
    const d = live();
    try {
      const q = d.queue(0);
      // Start both sides just below the wrap.
      d.state.queueStore(0, Q_NEXT_AVAIL, 0xfffe);
      for (let i = 0; i < 4; i++) {
        const slot = d.ringAddresses(0).avail + VRING_AVAIL_RING + 2 * ((0xfffe + i) % SIZE);
        d.setU16(slot, 0);
      }
      d.writeDesc(d.ringAddresses(0).desc, 0, 0x30_0000, 8, W, 0);
      d.setU16(d.ringAddresses(0).avail + 2, 2); // 0xfffe, 0xffff, 0, 1 are available
      let popped = 0;
      for (let c = q.pop(); c !== null && popped < 10; c = q.pop()) popped++;
      expect(popped).toBe(4);
      expect(d.state.queueLoad(0, Q_NEXT_AVAIL)).toBe(2);
    } finally {
      d.close();
    }
  });

  test("a reset between pop and completion publishes nothing", () => {
    const d = live();
    try {
      const q = d.queue(0);
      const chain = d.post(0, [{ addr: 0x30_0000, len: 8, write: true }]);
      const c = q.pop()!;
      expect(c.head).toBe(chain);
      d.write(VIRTIO_MMIO_STATUS, 0);
      expect(q.pushUsed(c, 8)).toBe(false);
      expect(d.usedIdx(0)).toBe(0);
      expect(q.signalIfNeeded()).toBe(false);
      expect(d.read(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(0);
    } finally {
      d.close();
    }
  });

  test("with EVENT_IDX: avail_event follows the device, used_event decides the interrupt", () => {
    const d = live();
    try {
      expect(d.state.negotiated(VIRTIO_RING_F_EVENT_IDX)).toBe(true);
      const q = d.queue(0);
      const usedEvent = d.ringAddresses(0).avail + VRING_AVAIL_RING + 2 * SIZE;
      const availEvent = d.ringAddresses(0).used + VRING_USED_RING + 8 * SIZE;
      d.setU16(usedEvent, 1); // interrupt me once used.idx passes 1 (i.e. reaches 2)
      for (let i = 0; i < 3; i++) d.post(0, [{ addr: 0x30_0000, len: 8, write: true }]);
      const chains = [q.pop()!, q.pop()!, q.pop()!];
      expect(q.pop()).toBeNull();
      expect(d.getU16(availEvent)).toBe(3);
      expect(q.pushUsed(chains[0]!, 8)).toBe(true);
      expect(q.signalIfNeeded()).toBe(false); // used.idx 1: not past used_event
      expect(q.pushUsed(chains[1]!, 8)).toBe(true);
      expect(q.signalIfNeeded()).toBe(true); // used.idx 2: crossed it
      expect(d.read(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(VIRTIO_MMIO_INT_VRING);
      expect(q.pushUsed(chains[2]!, 8)).toBe(true);
      expect(q.signalIfNeeded()).toBe(false); // used_event still 1: already signalled past it
      expect(q.signalIfNeeded()).toBe(false); // nothing new
    } finally {
      d.close();
    }
  });

  test("without EVENT_IDX: avail.flags NO_INTERRUPT suppresses the interrupt", () => {
    const d = live(VERSION_1);
    try {
      const q = d.queue(0);
      d.setU16(d.ringAddresses(0).avail, VRING_AVAIL_F_NO_INTERRUPT);
      d.post(0, [{ addr: 0x30_0000, len: 8, write: true }]);
      expect(q.pushUsed(q.pop()!, 8)).toBe(true);
      expect(q.signalIfNeeded()).toBe(false);
      d.setU16(d.ringAddresses(0).avail, 0);
      d.post(0, [{ addr: 0x30_0000, len: 8, write: true }]);
      expect(q.pushUsed(q.pop()!, 8)).toBe(true);
      expect(q.signalIfNeeded()).toBe(true);
    } finally {
      d.close();
    }
  });

  test("nothing is popped before DRIVER_OK or from a queue that is not ready", () => {
    const d = new TestDriver(rngInfo());
    try {
      expect(d.queue(0).pop()).toBeNull();
      expect(d.queue(3).pop()).toBeNull();
    } finally {
      d.close();
    }
  });
});
