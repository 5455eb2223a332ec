/**
 * A virtio driver written in TypeScript for the device tests: guest RAM without a VM, a transport
 * driven through its bus-device interface (32-bit register accesses, as a guest makes them), split
 * rings laid out in that RAM, and helpers to post chains and read the used ring. Also hostile: any
 * descriptor can be written raw.
 */

import type { AccessSize } from "../../devices/bus.ts";
import {
  type VirtioDeviceInfo,
  VirtioMmioState,
  VirtioMmioTransport,
} from "../../devices/virtio/mmio-transport.ts";
import { SplitQueue } from "../../devices/virtio/queue.ts";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
  VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_USED_HIGH,
  VIRTIO_MMIO_QUEUE_USED_LOW,
  VIRTIO_MMIO_STATUS,
  VRING_AVAIL_RING,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_LAYOUT,
  VRING_USED_ELEM_LAYOUT,
  VRING_USED_RING,
} from "../../ffi/virtio-layouts.ts";
import { GuestMemory } from "../../src/memory/guest-memory.ts";

export const RAM_SIZE = 8 << 20;
/** Rings of queue q live at RING_BASE + q * RING_STRIDE: desc, then avail, then used (page aligned). */
const RING_BASE = 0x1_0000;
const RING_STRIDE = 0x4_0000;
const AVAIL_AT = 0x1_0000;
const USED_AT = 0x2_0000;
/** Data buffers are bump-allocated from here. */
const DATA_BASE = 0x20_0000;

export interface Desc {
  addr: number;
  len: number;
  write?: boolean;
}

export class TestDriver {
  readonly memory = GuestMemory.allocate([{ gpa: 0, size: RAM_SIZE }]);
  readonly state: VirtioMmioState;
  readonly transport: VirtioMmioTransport;
  readonly notified: number[] = [];
  private nextData = DATA_BASE;
  private nextDesc: number[] = [];
  private availIdx: number[] = [];
  readonly sizes: number[] = [];

  /** `notify` also runs for each QueueNotify write (after it is recorded in `notified`). */
  constructor(
    readonly info: VirtioDeviceInfo,
    notify: (queue: number) => void = () => {},
  ) {
    this.state = VirtioMmioState.create(info);
    this.transport = new VirtioMmioTransport(this.state.buffer, this.memory, (q) => {
      this.notified.push(q);
      notify(q);
    });
  }

  read(offset: number, size: AccessSize = 4): number {
    return this.transport.read(offset, size);
  }
  write(offset: number, value: number, size: AccessSize = 4): void {
    this.transport.write(offset, size, value);
  }

  deviceFeatures(): bigint {
    this.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    const lo = this.read(VIRTIO_MMIO_DEVICE_FEATURES);
    this.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    return (BigInt(this.read(VIRTIO_MMIO_DEVICE_FEATURES)) << 32n) | BigInt(lo);
  }

  writeFeatures(features: bigint): void {
    this.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.write(VIRTIO_MMIO_DRIVER_FEATURES, Number(features & 0xffff_ffffn));
    this.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.write(VIRTIO_MMIO_DRIVER_FEATURES, Number(features >> 32n));
  }

  ringAddresses(q: number): { desc: number; avail: number; used: number } {
    const desc = RING_BASE + q * RING_STRIDE;
    return { desc, avail: desc + AVAIL_AT, used: desc + USED_AT };
  }

  setupQueue(q: number, size: number): void {
    const r = this.ringAddresses(q);
    this.write(VIRTIO_MMIO_QUEUE_SEL, q);
    this.write(VIRTIO_MMIO_QUEUE_NUM, size);
    this.write(VIRTIO_MMIO_QUEUE_DESC_LOW, r.desc);
    this.write(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    this.write(VIRTIO_MMIO_QUEUE_AVAIL_LOW, r.avail);
    this.write(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
    this.write(VIRTIO_MMIO_QUEUE_USED_LOW, r.used);
    this.write(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
    this.write(VIRTIO_MMIO_QUEUE_READY, 1);
    this.sizes[q] = size;
    this.nextDesc[q] = 0;
    this.availIdx[q] = 0;
  }

  /**
   * The full initialisation sequence: reset, ACKNOWLEDGE, DRIVER, features (all the device offers
   * unless `features` says otherwise), FEATURES_OK, queues, DRIVER_OK. Returns the final status.
   */
  init(opts: { features?: bigint; queueSize?: number } = {}): number {
    this.write(VIRTIO_MMIO_STATUS, 0);
    this.memory.slice(RING_BASE, DATA_BASE - RING_BASE).fill(0);
    this.write(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.write(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    this.writeFeatures(opts.features ?? this.deviceFeatures());
    const s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    this.write(VIRTIO_MMIO_STATUS, s);
    for (let q = 0; q < this.info.queues; q++) this.setupQueue(q, opts.queueSize ?? 16);
    this.write(VIRTIO_MMIO_STATUS, s | VIRTIO_CONFIG_S_DRIVER_OK);
    return this.read(VIRTIO_MMIO_STATUS);
  }

  queue(q: number): SplitQueue {
    return new SplitQueue(this.state, q, this.memory);
  }

  /** A zeroed data buffer of `len` bytes (16-byte aligned). */
  alloc(len: number): number {
    const at = this.nextData;
    this.nextData += Math.ceil(len / 16) * 16;
    this.memory.slice(at, len).fill(0);
    return at;
  }

  /** Writes descriptor `index` of the table at `table` raw. */
  writeDesc(table: number, index: number, addr: number, len: number, flags: number, next: number): void {
    const at = table + index * VRING_DESC_LAYOUT.size;
    const b = this.memory.slice(at, VRING_DESC_LAYOUT.size);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    v.setBigUint64(VRING_DESC_LAYOUT.fields.addr.offset, BigInt(addr), true);
    v.setUint32(VRING_DESC_LAYOUT.fields.len.offset, len, true);
    v.setUint16(VRING_DESC_LAYOUT.fields.flags.offset, flags, true);
    v.setUint16(VRING_DESC_LAYOUT.fields.next.offset, next, true);
  }

  /** Puts `head` in the avail ring and publishes it (avail.idx + `bump`, default 1). */
  publish(q: number, head: number, bump = 1): void {
    const r = this.ringAddresses(q);
    const idx = this.availIdx[q]!;
    const slot = r.avail + VRING_AVAIL_RING + 2 * (idx % this.sizes[q]!);
    this.memory.slice(slot, 2).set([head & 0xff, head >> 8]);
    this.availIdx[q] = (idx + bump) & 0xffff;
    this.setU16(r.avail + 2, this.availIdx[q]!);
  }

  setU16(gpa: number, value: number): void {
    this.memory.slice(gpa, 2).set([value & 0xff, (value >> 8) & 0xff]);
  }
  getU16(gpa: number): number {
    const b = this.memory.slice(gpa, 2);
    return b[0]! | (b[1]! << 8);
  }

  /** Posts a chain of direct descriptors (or one indirect table with them); returns its head. */
  post(q: number, descs: readonly Desc[], opts: { indirect?: boolean } = {}): number {
    const r = this.ringAddresses(q);
    const flagsOf = (d: Desc, i: number) =>
      (d.write ? VRING_DESC_F_WRITE : 0) | (i < descs.length - 1 ? VRING_DESC_F_NEXT : 0);
    const head = this.nextDesc[q]!;
    if (opts.indirect) {
      const table = this.alloc(descs.length * VRING_DESC_LAYOUT.size);
      descs.forEach((d, i) => {
        this.writeDesc(table, i, d.addr, d.len, flagsOf(d, i), i + 1);
      });
      this.writeDesc(r.desc, head, table, descs.length * VRING_DESC_LAYOUT.size, VRING_DESC_F_INDIRECT, 0);
      this.nextDesc[q] = (head + 1) % this.sizes[q]!;
    } else {
      descs.forEach((d, i) => {
        const index = (head + i) % this.sizes[q]!;
        this.writeDesc(r.desc, index, d.addr, d.len, flagsOf(d, i), (index + 1) % this.sizes[q]!);
      });
      this.nextDesc[q] = (head + descs.length) % this.sizes[q]!;
    }
    this.publish(q, head);
    return head;
  }

  usedIdx(q: number): number {
    return this.getU16(this.ringAddresses(q).used + 2);
  }

  usedElem(q: number, i: number): { id: number; len: number } {
    const at =
      this.ringAddresses(q).used + VRING_USED_RING + VRING_USED_ELEM_LAYOUT.size * (i % this.sizes[q]!);
    return { id: this.memory.readU32(at), len: this.memory.readU32(at + 4) };
  }

  configU32(offset: number): number {
    return this.read(VIRTIO_MMIO_CONFIG + offset, 4);
  }

  close(): void {
    this.memory.close();
  }
}

export const VERSION_1 = 1n << BigInt(VIRTIO_F_VERSION_1);
