/**
 * What every virtio-mmio device type shares (devices/virtio/blk-device.ts, rng-device.ts,
 * console-device.ts, net-device.ts, vsock-device.ts): the spec, the resources (a VIRTIO_MMIO_SIZE window and a GSI from the allocator),
 * the front-end every vCPU worker puts on its MMIO bus, the `LNRO0005` DSDT device, the eventfds KVM
 * signals and listens to, the back-end's start data, counters, and save/restore of the transport.
 *
 * Notifications and interrupts never pass through the VMM thread:
 *  - each queue has an eventfd registered with KVM_IOEVENTFD at base + QueueNotify (4 bytes, datamatch =
 *    the queue index), so a driver's notify never exits to userspace; the device worker polls them. The
 *    front-end's fallback (a notify KVM did not catch) writes the same eventfd.
 *  - one eventfd per transport is registered with KVM_IRQFD on its GSI; the back-end writes it once per
 *    batch of completions the driver wants to hear about. The GSI is declared edge-triggered, active high,
 *    exclusive in the DSDT: a plain irqfd is a pulse, which a level-triggered pin would lose while the
 *    previous interrupt is still being serviced (docs/virtio.md).
 * The eventfd numbers live in shared words (`fds`), filled by `connect` on the VMM thread before any
 * worker starts, so the spec stays plain data that vCPU workers receive by structured clone.
 *
 * Threads: `create`, `connect`, `aml`, `save`, `restore` on the VMM thread; `attach` in every vCPU
 * worker; the back-end in the device's worker (src/vmm/virtio-worker.ts).
 */

import { VIRTIO_MMIO_QUEUE_NOTIFY } from "../../ffi/virtio-layouts.ts";
import { device, name, ONE, string } from "../../src/arch/x86_64/acpi/aml.ts";
import { interrupt, memory32Fixed, resourceTemplate } from "../../src/arch/x86_64/acpi/resource-template.ts";
import { VIRTIO_MMIO_BASE, VIRTIO_MMIO_SIZE } from "../../src/arch/x86_64/layout.ts";
import type { RegionDescriptor } from "../../src/memory/guest-memory.ts";
import { EventFd } from "../../src/sys/eventfd.ts";
import { restoreBuffers, saveBuffers } from "../device-state.ts";
import type { AmlContribution, DeviceKind, DeviceSpecBase, HostEnv } from "../device-type.ts";
import type { ResourceAllocator } from "../resource-allocator.ts";
import {
  attachVirtioMmio,
  VIRTIO_COUNTER_BAD_REQUESTS,
  VIRTIO_COUNTER_INTERRUPTS,
  VIRTIO_COUNTER_WORDS,
  type VirtioDeviceInfo,
  VirtioMmioState,
} from "./mmio-transport.ts";

/** The ACPI hardware ID of a virtio-mmio transport (Linux's virtio_mmio driver matches it). */
export const VIRTIO_MMIO_HID = "LNRO0005";
/** The worker entry (src/vmm/worker-entries.ts) every virtio back-end runs in. */
export const VIRTIO_WORKER_ENTRY = "virtio";
/** Bump when the saved bytes' layout changes (the transport's words, config, counters). */
export const VIRTIO_STATE_VERSION = 1;

export type VirtioKind = "virtio-blk" | "virtio-rng" | "virtio-console" | "virtio-net" | "virtio-vsock";

export { attachVirtioMmio, VIRTIO_COUNTER_BAD_REQUESTS, VIRTIO_COUNTER_INTERRUPTS, VIRTIO_COUNTER_WORDS };

export interface VirtioMmioSpec extends DeviceSpecBase {
  readonly kind: VirtioKind;
  /** Which virtio-mmio transport of the machine this is (its `_UID`, its DSDT name). */
  readonly uid: number;
  readonly base: number;
  readonly gsi: number;
  /** The transport's VirtioMmioState buffer. */
  readonly state: SharedArrayBuffer;
  /** BigInt64 counter words: the kind's, then VIRTIO_COUNTER_*. */
  readonly counters: SharedArrayBuffer;
  /** Int32 words: each queue's notify eventfd, then the irqfd; -1 until `connect`. */
  readonly fds: SharedArrayBuffer;
}

/** What a virtio back-end's worker starts from (the kind adds its own `device` part). */
export interface VirtioBackendInit<D = unknown> {
  readonly kind: VirtioKind;
  readonly name: string;
  readonly state: SharedArrayBuffer;
  readonly counters: SharedArrayBuffer;
  readonly regions: RegionDescriptor[];
  readonly queueFds: number[];
  readonly irqFd: number;
  readonly device: D;
}

/** What every kind's `connect` hands its device worker: the transport's shared state, RAM, eventfds and `device`. */
export function virtioBackendInit<D>(
  spec: VirtioMmioSpec,
  host: HostEnv,
  fds: VirtioEventFds,
  device: D,
): VirtioBackendInit<D> {
  return {
    kind: spec.kind,
    name: spec.name,
    state: spec.state,
    counters: spec.counters,
    regions: host.memory.descriptors,
    queueFds: fds.queueFds,
    irqFd: fds.irqFd,
    device,
  };
}

/** The DSDT name of transport `uid`: "VR00", "VR01", ... */
export function virtioDsdtName(uid: number): string {
  return `VR${uid.toString(16).toUpperCase().padStart(2, "0")}`;
}

/** VMM thread: claims the window and GSI and allocates the shared state of one transport. */
export function createVirtioMmio(
  resources: ResourceAllocator,
  kind: VirtioKind,
  deviceName: string,
  info: VirtioDeviceInfo,
): VirtioMmioSpec {
  const base = resources.allocateMmio(deviceName, VIRTIO_MMIO_SIZE).base;
  const gsi = resources.allocateGsi(deviceName);
  const fds = new SharedArrayBuffer((info.queues + 1) * Int32Array.BYTES_PER_ELEMENT);
  new Int32Array(fds).fill(-1);
  return {
    kind,
    name: deviceName,
    // Windows are allocated upwards from VIRTIO_MMIO_BASE and never overlap: the index is unique.
    uid: (base - VIRTIO_MMIO_BASE) / VIRTIO_MMIO_SIZE,
    base,
    gsi,
    state: VirtioMmioState.create(info).buffer,
    counters: new SharedArrayBuffer(VIRTIO_COUNTER_WORDS * BigInt64Array.BYTES_PER_ELEMENT),
    fds,
  };
}

/** The `LNRO0005` device: `_HID`, `_UID`, `_CCA` (coherent DMA), `_CRS` = the window and an edge GSI. */
export function virtioMmioAml(spec: VirtioMmioSpec): AmlContribution {
  return {
    systemBus: [
      device(virtioDsdtName(spec.uid), [
        name("_HID", string(VIRTIO_MMIO_HID)),
        name("_UID", spec.uid),
        name("_CCA", ONE),
        name(
          "_CRS",
          resourceTemplate([
            memory32Fixed(spec.base, VIRTIO_MMIO_SIZE),
            interrupt(
              { usage: "ResourceConsumer", trigger: "Edge", polarity: "ActiveHigh", sharing: "Exclusive" },
              [spec.gsi],
            ),
          ]),
        ),
      ]),
    ],
  };
}

/** The eventfds of a connected transport and how to let go of them. */
export interface VirtioEventFds {
  readonly queueFds: number[];
  readonly irqFd: number;
  /** Unregisters from KVM and closes; only once no worker uses them. */
  close(): void;
}

/**
 * VMM thread: one eventfd per queue (KVM_IOEVENTFD on QueueNotify, datamatch = queue) and one irqfd
 * (KVM_IRQFD on the GSI); their numbers go into the spec's shared `fds` words.
 */
export function connectVirtioEventFds(spec: VirtioMmioSpec, host: HostEnv): VirtioEventFds {
  const queues = new VirtioMmioState(spec.state).queueCount;
  const words = new Int32Array(spec.fds);
  const opened: EventFd[] = [];
  const undo: Array<() => void> = [];
  const close = () => {
    for (const f of undo.splice(0).reverse()) f();
    for (const e of opened.splice(0)) e.close();
    words.fill(-1);
  };
  try {
    for (let q = 0; q < queues; q++) {
      const fd = EventFd.create();
      opened.push(fd);
      const match = { addr: spec.base + VIRTIO_MMIO_QUEUE_NOTIFY, len: 4, datamatch: BigInt(q) } as const;
      host.vm.registerIoEventFd(fd.fd, match);
      undo.push(() => host.vm.unregisterIoEventFd(fd.fd, match));
      Atomics.store(words, q, fd.fd);
    }
    const irq = EventFd.create();
    opened.push(irq);
    host.vm.registerIrqFd(irq.fd, spec.gsi);
    undo.push(() => host.vm.unregisterIrqFd(irq.fd, spec.gsi));
    Atomics.store(words, queues, irq.fd);
    return { queueFds: opened.slice(0, queues).map((e) => e.fd), irqFd: irq.fd, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** The counters every virtio device reports, with the transport's own. */
export function commonVirtioCounters(
  spec: VirtioMmioSpec,
  badRequestsWord = VIRTIO_COUNTER_BAD_REQUESTS,
): Record<string, number | string> {
  const c = new BigInt64Array(spec.counters);
  const state = new VirtioMmioState(spec.state);
  return {
    kind: spec.kind,
    bad_requests: Number(Atomics.load(c, badRequestsWord)),
    needs_reset: state.needsResetEvents,
    interrupts: Number(Atomics.load(c, VIRTIO_COUNTER_INTERRUPTS)),
    bad_accesses: state.badAccesses,
  };
}

/** The kind-independent methods of a virtio device type; each kind adds `create` and `connect`. */
export function virtioMmioKind<K extends VirtioKind>(
  kind: K,
): Pick<DeviceKind<VirtioMmioSpec & { kind: K }>, "kind" | "attach" | "aml" | "save" | "restore"> {
  return {
    kind,
    attach: attachVirtioMmio,
    aml: virtioMmioAml,
    // The transport's words hold every queue's set-up and ring indices; the counters come along so a
    // restored VM keeps counting. Only while the device worker is parked (not inside processQueue).
    save: (spec) => saveBuffers(VIRTIO_STATE_VERSION, [spec.state, spec.counters]),
    restore: (spec, state) =>
      restoreBuffers(spec.name, VIRTIO_STATE_VERSION, state, [spec.state, spec.counters]),
  };
}
