/**
 * The virtio-mmio front-end as a guest sees it: identification, access widths, the status machine,
 * feature negotiation, queue set-up checks, reset, interrupts, notifications, and random register
 * traffic from a seeded RNG.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlockBackend } from "../../../devices/virtio/block.ts";
import { Q_NEXT_AVAIL, VirtioMmioState } from "../../../devices/virtio/mmio-transport.ts";
import { RngBackend } from "../../../devices/virtio/rng.ts";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE as ACK,
  VIRTIO_CONFIG_S_DRIVER as DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK as DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED as FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK as FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET as NEEDS_RESET,
  VIRTIO_ID_BLOCK,
  VIRTIO_ID_RNG,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_SHM_LEN_HIGH,
  VIRTIO_MMIO_SHM_LEN_LOW,
  VIRTIO_MMIO_SHM_SEL,
  VIRTIO_MMIO_SIZE,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VIRTIO_RING_F_EVENT_IDX,
} from "../../../ffi/virtio-layouts.ts";
import { Rng } from "../../helpers/rng.ts";
import { RAM_SIZE, TestDriver, VERSION_1 } from "../../helpers/virtio-driver.ts";

function rngDriver(): TestDriver {
  const rng = new RngBackend();
  rng.close();
  return new TestDriver(rng.info);
}

/** Drives the status register up to (and including) DRIVER, with `features` written. */
function upToDriver(d: TestDriver, features: bigint): void {
  d.write(VIRTIO_MMIO_STATUS, 0);
  d.write(VIRTIO_MMIO_STATUS, ACK);
  d.write(VIRTIO_MMIO_STATUS, ACK | DRIVER);
  d.writeFeatures(features);
}

describe("virtio-mmio transport", () => {
  test("identifies itself: magic 'virt', version 2, device ID, vendor, QueueNumMax", () => {
    const d = rngDriver();
    try {
      expect(d.read(VIRTIO_MMIO_MAGIC_VALUE)).toBe(VIRTIO_MMIO_MAGIC);
      expect(d.read(VIRTIO_MMIO_MAGIC_VALUE)).toBe(0x74726976);
      expect(d.read(VIRTIO_MMIO_VERSION)).toBe(2);
      expect(d.read(VIRTIO_MMIO_DEVICE_ID)).toBe(VIRTIO_ID_RNG);
      expect(d.read(VIRTIO_MMIO_VENDOR_ID)).not.toBe(0);
      expect(d.read(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBe(d.info.queueNumMax);
      d.write(VIRTIO_MMIO_QUEUE_SEL, 5);
      expect(d.read(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBe(0); // no such queue
      expect(d.deviceFeatures() & VERSION_1).toBe(VERSION_1);
      d.write(VIRTIO_MMIO_SHM_SEL, 0);
      expect(d.read(VIRTIO_MMIO_SHM_LEN_LOW)).toBe(0xffff_ffff); // no shared memory region
      expect(d.read(VIRTIO_MMIO_SHM_LEN_HIGH)).toBe(0xffff_ffff);
      expect(d.state.badAccesses).toBe(0);
    } finally {
      d.close();
    }
  });

  test("accesses of the wrong width, unaligned, unknown or read-only are ignored and counted", () => {
    const d = rngDriver();
    try {
      expect(d.read(VIRTIO_MMIO_MAGIC_VALUE, 1)).toBe(0);
      expect(d.read(VIRTIO_MMIO_MAGIC_VALUE, 2)).toBe(0);
      expect(d.read(VIRTIO_MMIO_MAGIC_VALUE, 8)).toBe(0);
      expect(d.read(VIRTIO_MMIO_MAGIC_VALUE + 1)).toBe(0);
      expect(d.read(0x0e0)).toBe(0); // reserved
      d.write(VIRTIO_MMIO_STATUS, ACK, 1);
      d.write(VIRTIO_MMIO_STATUS, ACK, 2);
      d.write(VIRTIO_MMIO_MAGIC_VALUE, 0);
      d.write(VIRTIO_MMIO_CONFIG, 0); // config space is read-only
      expect(d.read(VIRTIO_MMIO_CONFIG)).toBe(0); // rng has no config: no field here
      expect(d.read(VIRTIO_MMIO_STATUS)).toBe(0);
      expect(d.state.badAccesses).toBe(10);
    } finally {
      d.close();
    }
  });

  test("config space is read at its fields' widths only; 64-bit fields as two 32-bit halves", () => {
    const dir = mkdtempSync(join(tmpdir(), "bunvmm-cfg-"));
    const path = join(dir, "d.img");
    writeFileSync(path, new Uint8Array(512 * 0x30));
    const disk = BlockBackend.open({ path });
    const d = new TestDriver(disk.info);
    try {
      expect(d.read(VIRTIO_MMIO_DEVICE_ID)).toBe(VIRTIO_ID_BLOCK);
      expect(d.read(VIRTIO_MMIO_CONFIG, 4)).toBe(0x30);
      expect(d.read(VIRTIO_MMIO_CONFIG + 4, 4)).toBe(0);
      expect(d.state.badAccesses).toBe(0);
      expect(d.read(VIRTIO_MMIO_CONFIG, 8)).toBe(0);
      expect(d.read(VIRTIO_MMIO_CONFIG, 1)).toBe(0);
      expect(d.read(VIRTIO_MMIO_CONFIG + 2, 2)).toBe(0);
      expect(d.read(VIRTIO_MMIO_SIZE - 4, 4)).toBe(0); // past the config fields
      expect(d.state.badAccesses).toBe(4);
      expect(d.read(VIRTIO_MMIO_CONFIG + 18, 1)).toBe(0); // geometry.heads: a 1-byte field
      expect(d.state.badAccesses).toBe(4);
    } finally {
      d.close();
      disk.close();
      rmSync(dir, { recursive: true });
    }
  });

  test("the status machine refuses out-of-order steps, cleared bits and the device's own bit", () => {
    const d = rngDriver();
    try {
      const s = () => d.read(VIRTIO_MMIO_STATUS);
      d.write(VIRTIO_MMIO_STATUS, DRIVER); // DRIVER without ACKNOWLEDGE
      expect(s()).toBe(0);
      d.write(VIRTIO_MMIO_STATUS, ACK);
      d.write(VIRTIO_MMIO_STATUS, ACK | DRIVER_OK); // DRIVER_OK without FEATURES_OK
      expect(s()).toBe(ACK);
      d.write(VIRTIO_MMIO_STATUS, ACK | NEEDS_RESET); // not the driver's bit
      d.write(VIRTIO_MMIO_STATUS, ACK | 0x10); // an unknown bit
      expect(s()).toBe(ACK);
      d.write(VIRTIO_MMIO_STATUS, ACK | DRIVER);
      d.write(VIRTIO_MMIO_STATUS, DRIVER); // clearing ACKNOWLEDGE
      expect(s()).toBe(ACK | DRIVER);
      expect(d.state.refusedTransitions).toBe(5);
      d.write(VIRTIO_MMIO_STATUS, ACK | DRIVER | FAILED); // giving up is always allowed
      expect(s()).toBe(ACK | DRIVER | FAILED);
      d.write(VIRTIO_MMIO_STATUS, 0);
      expect(s()).toBe(0);
    } finally {
      d.close();
    }
  });

  test("FEATURES_OK needs VERSION_1 and only offered bits; features are frozen afterwards", () => {
    const d = rngDriver();
    try {
      upToDriver(d, 0n); // a legacy driver: no VERSION_1
      d.write(VIRTIO_MMIO_STATUS, ACK | DRIVER | FEATURES_OK);
      expect(d.read(VIRTIO_MMIO_STATUS) & FEATURES_OK).toBe(0);
      upToDriver(d, VERSION_1 | (1n << 40n)); // a bit the device never offered
      d.write(VIRTIO_MMIO_STATUS, ACK | DRIVER | FEATURES_OK);
      expect(d.read(VIRTIO_MMIO_STATUS) & FEATURES_OK).toBe(0);
      expect(d.state.refusedTransitions).toBe(2);
      upToDriver(d, VERSION_1 | (1n << BigInt(VIRTIO_RING_F_EVENT_IDX)));
      d.write(VIRTIO_MMIO_STATUS, ACK | DRIVER | FEATURES_OK);
      expect(d.read(VIRTIO_MMIO_STATUS)).toBe(ACK | DRIVER | FEATURES_OK);
      expect(d.state.negotiated(VIRTIO_RING_F_EVENT_IDX)).toBe(true);
      d.writeFeatures(VERSION_1); // too late
      expect(d.state.driverFeatures).toBe(VERSION_1 | (1n << BigInt(VIRTIO_RING_F_EVENT_IDX)));
      expect(d.state.refusedTransitions).toBe(4); // both halves refused
    } finally {
      d.close();
    }
  });

  test("QueueReady is refused for a bad size, misaligned or out-of-RAM rings, and at the wrong time", () => {
    const d = rngDriver();
    try {
      const tryQueue = (size: number, desc?: number): number => {
        d.write(VIRTIO_MMIO_QUEUE_SEL, 0);
        d.setupQueue(0, size);
        if (desc !== undefined) {
          d.write(VIRTIO_MMIO_QUEUE_READY, 0);
          d.write(VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
          d.write(VIRTIO_MMIO_QUEUE_READY, 1);
        }
        const ready = d.read(VIRTIO_MMIO_QUEUE_READY);
        d.write(VIRTIO_MMIO_QUEUE_READY, 0);
        return ready;
      };
      // Before FEATURES_OK, queue registers do not take writes.
      d.write(VIRTIO_MMIO_QUEUE_NUM, 8);
      expect(d.state.badAccesses).toBe(1);
      upToDriver(d, VERSION_1);
      d.write(VIRTIO_MMIO_STATUS, ACK | DRIVER | FEATURES_OK);
      expect(tryQueue(0)).toBe(0);
      expect(tryQueue(12)).toBe(0);
      expect(tryQueue(d.info.queueNumMax * 2)).toBe(0);
      expect(tryQueue(8, d.ringAddresses(0).desc + 8)).toBe(0); // misaligned
      expect(tryQueue(8, RAM_SIZE - 64)).toBe(0); // runs past RAM
      expect(tryQueue(8, 0xf000_0000)).toBe(0); // not RAM at all
      expect(d.state.refusedQueueSetups).toBe(6);
      expect(tryQueue(8)).toBe(1);
      // While ready, the set-up cannot change.
      d.setupQueue(0, 8);
      const bad = d.state.badAccesses;
      d.write(VIRTIO_MMIO_QUEUE_NUM, 4);
      expect(d.state.badAccesses).toBe(bad + 1);
      expect(d.state.queueConfig(0).size).toBe(8);
    } finally {
      d.close();
    }
  });

  test("reset returns every register to its initial state and bumps the reset epoch", () => {
    const d = rngDriver();
    try {
      expect(d.init()).toBe(ACK | DRIVER | FEATURES_OK | DRIVER_OK);
      d.state.queueStore(0, Q_NEXT_AVAIL, 3);
      d.state.raiseUsedBuffer(VIRTIO_MMIO_INT_VRING);
      const epoch = d.state.resetEpoch;
      d.write(VIRTIO_MMIO_STATUS, 0);
      expect(d.state.resetEpoch).toBe(epoch + 1);
      expect(d.read(VIRTIO_MMIO_STATUS)).toBe(0);
      expect(d.read(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(0);
      expect(d.read(VIRTIO_MMIO_QUEUE_READY)).toBe(0);
      expect(d.state.queueConfig(0)).toEqual({ size: 0, desc: 0, avail: 0, used: 0 });
      expect(d.state.queueLoad(0, Q_NEXT_AVAIL)).toBe(0);
      expect(d.state.driverFeatures).toBe(0n);
      expect(d.init()).toBe(ACK | DRIVER | FEATURES_OK | DRIVER_OK); // and it works again
    } finally {
      d.close();
    }
  });

  test("InterruptACK clears the bits it names; NEEDS_RESET raises a config interrupt and survives driver writes", () => {
    const d = rngDriver();
    try {
      const live = d.init();
      d.state.raiseUsedBuffer(VIRTIO_MMIO_INT_VRING);
      expect(d.read(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(VIRTIO_MMIO_INT_VRING);
      d.write(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
      expect(d.read(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(0);
      expect(d.state.setNeedsReset()).toBe(true);
      expect(d.state.setNeedsReset()).toBe(false); // once
      expect(d.state.needsResetEvents).toBe(1);
      expect(d.read(VIRTIO_MMIO_STATUS)).toBe(live | NEEDS_RESET);
      expect(d.read(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(VIRTIO_MMIO_INT_CONFIG);
      expect(d.state.live).toBe(false);
      d.write(VIRTIO_MMIO_STATUS, live | FAILED);
      expect(d.read(VIRTIO_MMIO_STATUS)).toBe(live | FAILED | NEEDS_RESET);
      d.write(VIRTIO_MMIO_STATUS, 0);
      expect(d.read(VIRTIO_MMIO_STATUS)).toBe(0);
    } finally {
      d.close();
    }
  });

  test("a QueueNotify that reaches the front-end is forwarded; a bad queue number is counted", () => {
    const d = rngDriver();
    try {
      d.write(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
      d.write(VIRTIO_MMIO_QUEUE_NOTIFY, 7);
      expect(d.notified).toEqual([0]);
      expect(d.state.forwardedNotifies).toBe(1);
      expect(d.state.badAccesses).toBe(1);
    } finally {
      d.close();
    }
  });

  test("ConfigGeneration changes around a config update", () => {
    const d = rngDriver();
    try {
      const g = d.read(VIRTIO_MMIO_CONFIG_GENERATION);
      d.state.configChanged(() => {});
      expect(d.read(VIRTIO_MMIO_CONFIG_GENERATION)).not.toBe(g);
      expect(d.read(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG).toBe(VIRTIO_MMIO_INT_CONFIG);
    } finally {
      d.close();
    }
  });

  test("random register traffic at random widths never throws, keeps reads 32-bit, and a reset recovers", () => {
    const seed = Number(process.env.BUNVMM_SEED ?? Date.now() % 2 ** 31);
    console.log(`seed ${seed}`);
    const rng = new Rng(seed);
    const d = rngDriver();
    const widths = [1, 2, 4, 8] as const;
    const interesting = [0, 1, 2, 3, 4, 7, 8, 15, 16, 0x80, 0xff, 0x1_0000, 0xffff_ffff];
    try {
      for (let i = 0; i < 20_000; i++) {
        const offset = rng.int(2) === 0 ? rng.int(VIRTIO_MMIO_SIZE) : rng.int(VIRTIO_MMIO_SIZE / 4) * 4;
        const size = rng.int(4) === 0 ? widths[rng.int(4)]! : 4;
        if (rng.int(2) === 0) {
          const v = d.read(offset, size);
          expect(Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff).toBe(true);
        } else {
          const value = rng.int(2) === 0 ? interesting[rng.int(interesting.length)]! : rng.int(2 ** 32);
          d.write(offset, value, size);
        }
        const status = d.state.status;
        // Whatever happened, DRIVER_OK never stands without FEATURES_OK.
        if (status & DRIVER_OK) expect(status & FEATURES_OK).toBe(FEATURES_OK);
      }
      expect(d.state.badAccesses).toBeGreaterThan(0);
      expect(d.init()).toBe(ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    } finally {
      d.close();
    }
  });

  test("VirtioMmioState refuses a bad description", () => {
    const info = new RngBackend();
    info.close();
    expect(() => VirtioMmioState.create({ ...info.info, queueNumMax: 100 })).toThrow("not a power of two");
    expect(() => VirtioMmioState.create({ ...info.info, config: new Uint8Array(0x200) })).toThrow(
      "does not fit",
    );
  });
});
