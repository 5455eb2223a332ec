/**
 * The virtio device types (devices/virtio/*-device.ts) as the registry makes them from a config, without
 * a VM: placement in config order from VIRTIO_MMIO_BASE and VIRTIO_GSI_BASE, a front-end a vCPU worker
 * attaches from a structured clone by kind alone, and save/restore of the transport's state.
 */
import { describe, expect, test } from "bun:test";
import { ByteQueue, createByteQueueBuffer } from "../../../devices/byte-queue.ts";
import type { DeviceConfig } from "../../../devices/registry.ts";
import { attachDevices, createDevices, deviceTypeOf, machineDevices } from "../../../devices/registry.ts";
import type { VirtioMmioSpec } from "../../../devices/virtio/mmio-device.ts";
import { VirtioMmioState } from "../../../devices/virtio/mmio-transport.ts";
import {
  VIRTIO_ID_BLOCK,
  VIRTIO_ID_CONSOLE,
  VIRTIO_ID_RNG,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS,
} from "../../../ffi/virtio-layouts.ts";
import { VIRTIO_GSI_BASE, VIRTIO_MMIO_BASE, VIRTIO_MMIO_SIZE } from "../../../src/arch/x86_64/layout.ts";
import { platformAllocator } from "../../../src/vmm/platform.ts";
import { RecordingIrqLine } from "../../helpers/recording-irq-line.ts";

const CONFIG: DeviceConfig = {
  disks: [
    { path: "/nonexistent/a.img", readonly: false, direct: false, id: "root" },
    { path: "/nonexistent/b.img", readonly: true, direct: false, id: "data" },
  ],
  rng: { src: "/dev/urandom" },
  console: { mode: "tty" },
};

function specs(config = CONFIG): VirtioMmioSpec[] {
  const serial = { tx: new ByteQueue(createByteQueueBuffer()), rx: new ByteQueue(createByteQueueBuffer()) };
  return createDevices(machineDevices(config), platformAllocator(), { maxVcpus: 1, serial }).filter(
    (s): s is VirtioMmioSpec => s.kind.startsWith("virtio-"),
  );
}

const context = () => ({
  memory: { contains: () => true },
  irqLine: () => new RecordingIrqLine(),
  request: () => {},
  eject: { readCmd: () => 0, tryKill: () => "already" as const },
});

describe("virtio device types from a config", () => {
  test("disks in config order, then the rng, then the console, from VIRTIO_MMIO_BASE and VIRTIO_GSI_BASE", () => {
    const all = specs();
    expect(all.map((s) => [s.kind, s.name, s.uid])).toEqual([
      ["virtio-blk", "root", 0],
      ["virtio-blk", "data", 1],
      ["virtio-rng", "rng0", 2],
      ["virtio-console", "console0", 3],
    ]);
    all.forEach((s, i) => {
      expect(s.base).toBe(VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SIZE);
      expect(s.gsi).toBe(VIRTIO_GSI_BASE + i);
    });
  });

  test("no [[disks]], no [rng], console off: no virtio device", () => {
    expect(specs({ disks: [], console: { mode: "off" } })).toEqual([]);
  });

  test("a vCPU worker attaches every transport from a structured clone, by kind alone", () => {
    const all = specs();
    const buses = attachDevices(structuredClone(all), context());
    const ids = [VIRTIO_ID_BLOCK, VIRTIO_ID_BLOCK, VIRTIO_ID_RNG, VIRTIO_ID_CONSOLE];
    all.forEach((s, i) => {
      expect(buses.mmio.read(s.base + VIRTIO_MMIO_MAGIC_VALUE, 4)).toBe(VIRTIO_MMIO_MAGIC);
      expect(buses.mmio.read(s.base + VIRTIO_MMIO_DEVICE_ID, 4)).toBe(ids[i]);
    });
    // One state for every worker: a status written through one clone is seen through the original.
    buses.mmio.write(all[0]!.base + VIRTIO_MMIO_STATUS, 4, 1);
    expect(new VirtioMmioState(all[0]!.state).status).toBe(1);
  });

  test("save and restore carry the transport's registers and queue set-up (version 1); another version is refused", () => {
    const [a] = specs();
    const [b] = specs();
    const buses = attachDevices([a!], context());
    for (const status of [1, 3]) buses.mmio.write(a!.base + VIRTIO_MMIO_STATUS, 4, status);
    buses.mmio.write(a!.base + VIRTIO_MMIO_QUEUE_SEL, 4, 0);
    buses.mmio.write(a!.base + VIRTIO_MMIO_QUEUE_NUM, 4, 64);
    const type = deviceTypeOf("virtio-blk");
    const saved = type.save(a!);
    expect(saved.version).toBe(1);
    type.restore(b!, saved);
    expect(new Uint8Array(b!.state)).toEqual(new Uint8Array(a!.state));
    expect(new VirtioMmioState(b!.state).status).toBe(3);
    expect(() => type.restore(b!, { ...saved, version: 2 })).toThrow(
      "cannot restore device root: saved state version 2, this build reads version 1",
    );
  });
});
