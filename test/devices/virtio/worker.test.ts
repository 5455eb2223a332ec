/**
 * Front-end and back-end on different threads, as in a VM: the test thread is the vCPU (it drives the
 * transport registers and writes the rings), a Worker is the device (it serves the queue on a notify
 * eventfd and raises an interrupt eventfd). Both see one transport state through its SharedArrayBuffer,
 * and guest RAM through attached views.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlockBackend } from "../../../devices/virtio/block.ts";
import {
  VIRTIO_BLK_OUTHDR_LAYOUT,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_T_OUT,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VRING_AVAIL_RING,
} from "../../../ffi/virtio-layouts.ts";
import { EventFd } from "../../../src/sys/eventfd.ts";
import { waitUntil } from "../../helpers/guests.ts";
import type { BlkWorkerStart } from "../../helpers/virtio-blk-worker.ts";
import { TestDriver } from "../../helpers/virtio-driver.ts";

const SECTOR = 512;
const SECTORS = 64;
const BATCHES = 4;
const PER_BATCH = 8;
const QUEUE_SIZE = 64;

test("a device worker serves requests the vCPU thread posts, through shared state and eventfds", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-virtio-worker-"));
  const path = join(dir, "disk.img");
  writeFileSync(path, new Uint8Array(SECTORS * SECTOR));
  const notifyFd = EventFd.create();
  const irqFd = EventFd.create();
  const stopFd = EventFd.create();
  const d = new TestDriver(BlockBackend.deviceInfo(SECTORS, false, 128), () => notifyFd.write());
  const worker = new Worker(join(import.meta.dir, "..", "..", "helpers", "virtio-blk-worker.ts"));
  const messages: { kind: string; batches?: number }[] = [];
  worker.onmessage = (e) => messages.push(e.data);
  try {
    d.init({ queueSize: QUEUE_SIZE });
    const start: BlkWorkerStart = {
      state: d.state.buffer,
      regions: d.memory.descriptors,
      path,
      notifyFd: notifyFd.fd,
      irqFd: irqFd.fd,
      stopFd: stopFd.fd,
    };
    worker.postMessage(start);
    await waitUntil(() => messages.some((m) => m.kind === "ready"), "the device worker to start");
    // The worker holds the image's lock now: a second opener on this thread is refused.
    expect(() => BlockBackend.open({ path })).toThrow("is locked by another process");

    const statuses: number[] = [];
    let interrupts = 0n;
    for (let b = 0; b < BATCHES; b++) {
      for (let i = 0; i < PER_BATCH; i++) {
        const sector = b * PER_BATCH + i;
        const hdr = d.alloc(VIRTIO_BLK_OUTHDR_LAYOUT.size);
        d.memory.writeU32(hdr + VIRTIO_BLK_OUTHDR_LAYOUT.fields.type.offset, VIRTIO_BLK_T_OUT);
        d.memory.writeU64(hdr + VIRTIO_BLK_OUTHDR_LAYOUT.fields.sector.offset, BigInt(sector));
        const data = d.alloc(SECTOR);
        d.memory.slice(data, SECTOR).fill(sector + 1);
        const status = d.alloc(1);
        d.memory.slice(status, 1)[0] = 0xff;
        statuses.push(status);
        d.post(0, [
          { addr: hdr, len: VIRTIO_BLK_OUTHDR_LAYOUT.size },
          { addr: data, len: SECTOR },
          { addr: status, len: 1, write: true },
        ]);
      }
      const want = (b + 1) * PER_BATCH;
      // EVENT_IDX: ask for an interrupt once used.idx passes want - 1, i.e. when the batch is done.
      d.setU16(d.ringAddresses(0).avail + VRING_AVAIL_RING + 2 * QUEUE_SIZE, want - 1);
      d.write(VIRTIO_MMIO_QUEUE_NOTIFY, 0); // no ioeventfd here: the front-end forwards it
      await waitUntil(() => d.usedIdx(0) === want, `used.idx to reach ${want}`);
      await waitUntil(() => {
        interrupts += irqFd.read();
        return interrupts > BigInt(b);
      }, `the interrupt for batch ${b}`);
    }
    expect(interrupts).toBe(BigInt(BATCHES));
    expect(statuses.map((s) => d.memory.read(s, 1)[0])).toEqual(statuses.map(() => VIRTIO_BLK_S_OK));
    stopFd.write();
    await waitUntil(() => messages.some((m) => m.kind === "stopped"), "the device worker to stop");
    expect(messages.find((m) => m.kind === "stopped")?.batches).toBeGreaterThanOrEqual(1);
    const file = readFileSync(path);
    for (let s = 0; s < BATCHES * PER_BATCH; s++) expect(file[s * SECTOR + SECTOR - 1]).toBe(s + 1);
    expect(file[BATCHES * PER_BATCH * SECTOR]).toBe(0);
    BlockBackend.open({ path }).close(); // the worker released the lock
  } finally {
    worker.terminate();
    d.close();
    notifyFd.close();
    irqFd.close();
    stopFd.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
