/**
 * The virtio-rng device type, present when the config has an `[rng]` table: one request queue the
 * back-end fills from `rng.src` (default /dev/urandom). `connect` checks the source opens on the VMM
 * thread (without waiting for a FIFO's writer), so a bad one stops the VM before it starts; the worker
 * opens its own descriptor, and a read that blocks there holds up only that worker (pause then times
 * out naming it).
 *
 * Threads: VMM thread, except `attach` (every vCPU worker); the back-end runs in src/vmm/virtio-worker.ts.
 */
import { closeSync, constants, openSync } from "node:fs";
import { BunvmmError } from "../../src/errors.ts";
import type { DeviceKind, DeviceType } from "../device-type.ts";
import {
  commonVirtioCounters,
  connectVirtioEventFds,
  createVirtioMmio,
  VIRTIO_WORKER_ENTRY,
  type VirtioMmioSpec,
  virtioBackendInit,
  virtioMmioKind,
} from "./mmio-device.ts";
import { RNG_BYTES, rngDeviceInfo } from "./rng.ts";

export { RNG_BYTES };

/** The rng device's name in counters and messages. */
export const RNG_DEVICE_NAME = "rng0";

export interface VirtioRngSpec extends VirtioMmioSpec {
  readonly kind: "virtio-rng";
  readonly source: string;
}

/** What the worker starts the rng back-end from. */
export interface RngDeviceInit {
  readonly source: string;
}

export const virtioRngKind: DeviceKind<VirtioRngSpec> = {
  ...virtioMmioKind("virtio-rng"),
  connect(spec, host) {
    try {
      // Non-blocking: opening a FIFO for reading would otherwise wait for a writer, on the VMM thread.
      closeSync(openSync(spec.source, constants.O_RDONLY | constants.O_NONBLOCK));
    } catch (e) {
      throw new BunvmmError("host", `rng.src = ${JSON.stringify(spec.source)}: ${(e as Error).message}`);
    }
    const fds = connectVirtioEventFds(spec, host);
    const init = virtioBackendInit<RngDeviceInit>(spec, host, fds, { source: spec.source });
    const c = new BigInt64Array(spec.counters);
    return {
      backend: { entry: VIRTIO_WORKER_ENTRY, init },
      counters: () => ({ ...commonVirtioCounters(spec), bytes: Number(Atomics.load(c, RNG_BYTES)) }),
      close: () => fds.close(),
    };
  },
};

/** The type of the `[rng]` device. */
export function virtioRngType(rng: { src: string }): DeviceType<VirtioRngSpec> {
  return {
    ...virtioRngKind,
    create: (resources) => ({
      ...createVirtioMmio(resources, "virtio-rng", RNG_DEVICE_NAME, rngDeviceInfo()),
      kind: "virtio-rng",
      source: rng.src,
    }),
  };
}
