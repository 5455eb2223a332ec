/**
 * The virtio-mmio transport, version 2 only (virtio 1.x; no legacy page-frame registers): the register
 * block a driver programs to discover a device, negotiate features, set up its virtqueues and take
 * interrupts.
 *
 * Two halves share one SharedArrayBuffer (VirtioMmioState):
 *  - the front-end, `VirtioMmioTransport`, a BusDevice each vCPU worker builds over the shared state
 *    and runs on its MMIO exits;
 *  - the back-end (devices/virtio/block.ts, rng.ts, console.ts over devices/virtio/queue.ts), run by
 *    a device worker, reads the queue set-up from the same words and owns the ring indices.
 *
 * What the front-end accepts and refuses (a guest can write anything; nothing here throws on it):
 *  - registers below 0x100 only with 32-bit accesses at their offsets; any other width, an unknown
 *    offset, a write to a read-only register or a read of a write-only one is ignored (reads give 0)
 *    and counted in BAD_ACCESSES;
 *  - the shared memory region registers say "no region" (SHMLen and SHMBase read all ones);
 *  - config space (0x100 on) only at each field's own width (8-byte fields as two 32-bit halves, as
 *    Linux reads them); it is read-only: writes are counted;
 *  - Status: 0 resets; otherwise a write may only add bits, in order (DRIVER needs ACKNOWLEDGE,
 *    FEATURES_OK needs DRIVER and an acceptable feature set, DRIVER_OK needs FEATURES_OK); FAILED is
 *    always accepted; NEEDS_RESET belongs to the device. Anything else is refused, counted, and leaves
 *    Status as it was (so a driver re-reading Status sees FEATURES_OK missing, as the spec asks);
 *  - features: the driver's set must contain VERSION_1 and nothing the device did not offer; it can be
 *    written only between DRIVER and FEATURES_OK;
 *  - queue set-up registers are written only while FEATURES_OK is set, DRIVER_OK is not, and the selected
 *    queue is not ready; QueueReady = 1 is accepted only for a size that is a power of two no larger
 *    than QueueNumMax and rings aligned (16, 2, 4 bytes) and wholly inside guest RAM; else refused and
 *    counted (QueueReady reads back 0).
 *
 * Reset (Status = 0) returns every register to its initial state and bumps RESET_EPOCH. The back-end
 * takes the epoch when it pops a chain and publishes nothing for a chain popped in an older epoch.
 *
 * Concurrency invariants (no locks, like every bunvmm device):
 *  - STATUS is changed by compare-and-swap only: vCPUs write driver bits, the back-end ORs NEEDS_RESET;
 *    neither can lose the other's change.
 *  - INTERRUPT_STATUS: the back-end ORs bits in, a vCPU's InterruptACK ANDs them out.
 *  - Queue set-up words are written by vCPUs only while the queue is not ready; READY is stored last
 *    (Atomics.store, sequentially consistent), so a back-end that loads READY = 1 sees the set-up.
 *  - NEXT_AVAIL, NEXT_USED and SIGNALLED_USED are written only by the back-end (and zeroed by reset,
 *    which bumps the epoch first so the back-end drops what it was doing).
 * A write to QueueNotify normally never exits (KVM_IOEVENTFD catches it); if it does, it is forwarded
 * to the `notify(queue)` callback.
 */
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_BUNVMM_VENDOR,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
  VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_USED_HIGH,
  VIRTIO_MMIO_QUEUE_USED_LOW,
  VIRTIO_MMIO_SHM_BASE_HIGH,
  VIRTIO_MMIO_SHM_BASE_LOW,
  VIRTIO_MMIO_SHM_LEN_HIGH,
  VIRTIO_MMIO_SHM_LEN_LOW,
  VIRTIO_MMIO_SHM_SEL,
  VIRTIO_MMIO_SIZE,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VIRTIO_MMIO_VERSION_MODERN,
  VRING_AVAIL_ALIGN_SIZE,
  VRING_DESC_ALIGN_SIZE,
  VRING_USED_ALIGN_SIZE,
  vringAvailBytes,
  vringDescBytes,
  vringUsedBytes,
} from "../../ffi/virtio-layouts.ts";
import type { Field } from "../../src/arch/x86_64/struct-layout.ts";
import { EventFd } from "../../src/sys/eventfd.ts";
import type { AccessSize, BusDevice } from "../bus.ts";
import type { Buses, DeviceContext } from "../device-type.ts";
import type { VirtioMmioSpec } from "./mmio-device.ts";

/**
 * Counter words (BigInt64) of every virtio device: the kind's own from word 0 (BLK_*, RNG_BYTES,
 * CONSOLE_*), the common ones at the end.
 */
export const VIRTIO_COUNTER_WORDS = 16;
/** Chains the back-end refused or failed. */
export const VIRTIO_COUNTER_BAD_REQUESTS = 14;
/** Interrupts the back-end raised (writes to its irqfd). */
export const VIRTIO_COUNTER_INTERRUPTS = 15;

/** What a device offers, fixed when it is created. */
export interface VirtioDeviceInfo {
  /** VIRTIO_ID_BLOCK, VIRTIO_ID_RNG, ... */
  readonly deviceId: number;
  /** Feature bits offered (VERSION_1 is added by the transport). */
  readonly features: bigint;
  readonly queues: number;
  /** QueueNumMax of every queue: a power of two, at most 32768. */
  readonly queueNumMax: number;
  /** Initial bytes of the device's config space. */
  readonly config: Uint8Array;
  /** The config fields a driver may read, each at its own width. */
  readonly configFields: readonly Field[];
}

/** The largest queue size the split ring allows. */
export const VIRTQ_MAX_SIZE = 32768;
const REGISTER_WIDTH = 4;
/** SHMLen/SHMBase of a region that does not exist: all ones (both halves). */
const NO_SHM_REGION = 0xffff_ffff;
const U32 = 0x1_0000_0000;
/** Status bits a driver may set. */
const DRIVER_STATUS_BITS =
  VIRTIO_CONFIG_S_ACKNOWLEDGE |
  VIRTIO_CONFIG_S_DRIVER |
  VIRTIO_CONFIG_S_FEATURES_OK |
  VIRTIO_CONFIG_S_DRIVER_OK |
  VIRTIO_CONFIG_S_FAILED;

// Shared words. Static device description first (written once at creation), then the register state.
const W_DEVICE_ID = 0;
const W_FEATURES_LO = 1;
const W_FEATURES_HI = 2;
const W_QUEUES = 3;
const W_QUEUE_NUM_MAX = 4;
const W_CONFIG_SIZE = 5;
const W_STATUS = 6;
const W_DEVICE_FEATURES_SEL = 7;
const W_DRIVER_FEATURES_SEL = 8;
const W_DRIVER_FEATURES_LO = 9;
const W_DRIVER_FEATURES_HI = 10;
const W_QUEUE_SEL = 11;
const W_INTERRUPT_STATUS = 12;
const W_CONFIG_GENERATION = 13;
const W_RESET_EPOCH = 14;
const W_BAD_ACCESSES = 15;
const W_REFUSED_TRANSITIONS = 16;
const W_NEEDS_RESET_EVENTS = 17;
const W_REFUSED_QUEUES = 18;
const W_NOTIFIES = 19;
const HEADER_WORDS = 20;

/** Per-queue words, at HEADER_WORDS + queue * QUEUE_WORDS. */
export const Q_SIZE = 0;
export const Q_READY = 1;
export const Q_DESC_LO = 2;
export const Q_DESC_HI = 3;
export const Q_AVAIL_LO = 4;
export const Q_AVAIL_HI = 5;
export const Q_USED_LO = 6;
export const Q_USED_HI = 7;
/** Back-end owned: the next avail ring slot to read, the next used index to publish. */
export const Q_NEXT_AVAIL = 8;
export const Q_NEXT_USED = 9;
/** Back-end owned: the used index when the driver was last interrupted (for EVENT_IDX). */
export const Q_SIGNALLED_USED = 10;
const QUEUE_WORDS = 11;

/** The queue set-up a back-end reads, all plain numbers. */
export interface QueueConfig {
  readonly size: number;
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
}

function splitBits(v: bigint): [lo: number, hi: number] {
  return [Number(v & 0xffff_ffffn) | 0, Number((v >> 32n) & 0xffff_ffffn) | 0];
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/**
 * The shared state of one transport: typed access for both halves. Layout: Int32 words (header, then
 * QUEUE_WORDS per queue), then the config bytes, then one byte per config byte giving the access
 * width a read may start there with (0: none).
 */
export class VirtioMmioState {
  readonly words: Int32Array;
  readonly config: Uint8Array;
  private readonly configWidths: Uint8Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    const head = new Int32Array(buffer, 0, HEADER_WORDS);
    const queues = head[W_QUEUES]!;
    const configSize = head[W_CONFIG_SIZE]!;
    const wordBytes = (HEADER_WORDS + queues * QUEUE_WORDS) * Int32Array.BYTES_PER_ELEMENT;
    this.words = new Int32Array(buffer, 0, wordBytes / Int32Array.BYTES_PER_ELEMENT);
    this.config = new Uint8Array(buffer, wordBytes, configSize);
    this.configWidths = new Uint8Array(buffer, wordBytes + configSize, configSize);
  }

  /** Allocates and initialises the state of a device. @throws {RangeError} on a bad description. */
  static create(info: VirtioDeviceInfo): VirtioMmioState {
    if (!isPowerOfTwo(info.queueNumMax) || info.queueNumMax > VIRTQ_MAX_SIZE) {
      throw new RangeError(`queueNumMax ${info.queueNumMax} is not a power of two <= ${VIRTQ_MAX_SIZE}`);
    }
    if (VIRTIO_MMIO_CONFIG + info.config.length > VIRTIO_MMIO_SIZE) {
      throw new RangeError(`a ${info.config.length}-byte config space does not fit the MMIO window`);
    }
    const wordBytes = (HEADER_WORDS + info.queues * QUEUE_WORDS) * Int32Array.BYTES_PER_ELEMENT;
    const buffer = new SharedArrayBuffer(wordBytes + 2 * info.config.length);
    const head = new Int32Array(buffer, 0, HEADER_WORDS);
    const [lo, hi] = splitBits(info.features | (1n << BigInt(VIRTIO_F_VERSION_1)));
    head[W_DEVICE_ID] = info.deviceId;
    head[W_FEATURES_LO] = lo;
    head[W_FEATURES_HI] = hi;
    head[W_QUEUES] = info.queues;
    head[W_QUEUE_NUM_MAX] = info.queueNumMax;
    head[W_CONFIG_SIZE] = info.config.length;
    const state = new VirtioMmioState(buffer);
    state.config.set(info.config);
    for (const f of info.configFields) {
      if (f.offset + f.size > info.config.length)
        throw new RangeError(`config field at ${f.offset} overruns`);
      if (f.size === 8) {
        state.configWidths[f.offset] = REGISTER_WIDTH;
        state.configWidths[f.offset + REGISTER_WIDTH] = REGISTER_WIDTH;
      } else if (f.size === 1 || f.size === 2 || f.size === 4) {
        state.configWidths[f.offset] = f.size;
      } else {
        for (let i = 0; i < f.size; i++) state.configWidths[f.offset + i] = 1; // a byte array
      }
    }
    return state;
  }

  get deviceId(): number {
    return this.words[W_DEVICE_ID]!;
  }
  get queueCount(): number {
    return this.words[W_QUEUES]!;
  }
  get queueNumMax(): number {
    return this.words[W_QUEUE_NUM_MAX]!;
  }
  get deviceFeatures(): bigint {
    return (BigInt(this.words[W_FEATURES_HI]! >>> 0) << 32n) | BigInt(this.words[W_FEATURES_LO]! >>> 0);
  }
  get driverFeatures(): bigint {
    const hi = Atomics.load(this.words, W_DRIVER_FEATURES_HI) >>> 0;
    return (BigInt(hi) << 32n) | BigInt(Atomics.load(this.words, W_DRIVER_FEATURES_LO) >>> 0);
  }
  /** True when the driver accepted feature bit `bit` (meaningful once FEATURES_OK is set). */
  negotiated(bit: number): boolean {
    return ((this.driverFeatures >> BigInt(bit)) & 1n) === 1n;
  }
  get status(): number {
    return Atomics.load(this.words, W_STATUS);
  }
  /** DRIVER_OK set and neither NEEDS_RESET nor FAILED: the back-end may process queues. */
  get live(): boolean {
    const s = this.status;
    return (
      (s & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 &&
      (s & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)) === 0
    );
  }
  get resetEpoch(): number {
    return Atomics.load(this.words, W_RESET_EPOCH);
  }
  get interruptStatus(): number {
    return Atomics.load(this.words, W_INTERRUPT_STATUS);
  }
  get configGeneration(): number {
    return Atomics.load(this.words, W_CONFIG_GENERATION);
  }
  get badAccesses(): number {
    return Atomics.load(this.words, W_BAD_ACCESSES);
  }
  get refusedTransitions(): number {
    return Atomics.load(this.words, W_REFUSED_TRANSITIONS);
  }
  get needsResetEvents(): number {
    return Atomics.load(this.words, W_NEEDS_RESET_EVENTS);
  }
  get refusedQueueSetups(): number {
    return Atomics.load(this.words, W_REFUSED_QUEUES);
  }
  /** QueueNotify writes that reached the front-end (KVM_IOEVENTFD absent or not yet wired). */
  get forwardedNotifies(): number {
    return Atomics.load(this.words, W_NOTIFIES);
  }

  /** Index of queue `q`'s word `field` (Q_*). */
  queueWord(q: number, field: number): number {
    return HEADER_WORDS + q * QUEUE_WORDS + field;
  }
  queueLoad(q: number, field: number): number {
    return Atomics.load(this.words, this.queueWord(q, field)) >>> 0;
  }
  queueStore(q: number, field: number, value: number): void {
    Atomics.store(this.words, this.queueWord(q, field), value | 0);
  }
  queueReady(q: number): boolean {
    return q >= 0 && q < this.queueCount && this.queueLoad(q, Q_READY) === 1;
  }
  /** The set-up of a ready queue, read after READY (see the invariant above). */
  queueConfig(q: number): QueueConfig {
    const addr = (lo: number, hi: number) => this.queueLoad(q, hi) * U32 + this.queueLoad(q, lo);
    return {
      size: this.queueLoad(q, Q_SIZE),
      desc: addr(Q_DESC_LO, Q_DESC_HI),
      avail: addr(Q_AVAIL_LO, Q_AVAIL_HI),
      used: addr(Q_USED_LO, Q_USED_HI),
    };
  }

  /** Back-end: a used buffer is ready (the caller then raises the interrupt line). */
  raiseUsedBuffer(bit: number): void {
    Atomics.or(this.words, W_INTERRUPT_STATUS, bit);
  }
  /** Back-end: the driver broke the rules; stop until it resets. Returns false if it was already set. */
  setNeedsReset(): boolean {
    for (;;) {
      const s = this.status;
      if (s === 0 || (s & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) return false;
      if (Atomics.compareExchange(this.words, W_STATUS, s, s | VIRTIO_CONFIG_S_NEEDS_RESET) === s) break;
    }
    Atomics.add(this.words, W_NEEDS_RESET_EVENTS, 1);
    if (this.status & VIRTIO_CONFIG_S_DRIVER_OK)
      Atomics.or(this.words, W_INTERRUPT_STATUS, VIRTIO_MMIO_INT_CONFIG);
    return true;
  }
  /** Back-end: the config space changed (capacity of a resized disk): new generation, config interrupt. */
  configChanged(update: (config: Uint8Array) => void): void {
    Atomics.add(this.words, W_CONFIG_GENERATION, 1);
    update(this.config);
    Atomics.add(this.words, W_CONFIG_GENERATION, 1);
    Atomics.or(this.words, W_INTERRUPT_STATUS, VIRTIO_MMIO_INT_CONFIG);
  }

  countBadAccess(): void {
    Atomics.add(this.words, W_BAD_ACCESSES, 1);
  }
  countRefusedTransition(): void {
    Atomics.add(this.words, W_REFUSED_TRANSITIONS, 1);
  }

  /** Front-end side of the registers (kept here so tests and the front-end share one implementation). */
  configWidth(offset: number): number {
    return offset >= 0 && offset < this.configWidths.length ? this.configWidths[offset]! : 0;
  }

  /**
   * Returns every register to its initial state. The epoch is bumped first, so a back-end that checks
   * it before publishing drops chains popped before the reset.
   */
  reset(): void {
    Atomics.add(this.words, W_RESET_EPOCH, 1);
    for (let q = 0; q < this.queueCount; q++) {
      this.queueStore(q, Q_READY, 0);
      for (let f = 0; f < QUEUE_WORDS; f++) if (f !== Q_READY) this.queueStore(q, f, 0);
    }
    for (const w of [
      W_DEVICE_FEATURES_SEL,
      W_DRIVER_FEATURES_SEL,
      W_DRIVER_FEATURES_LO,
      W_DRIVER_FEATURES_HI,
      W_QUEUE_SEL,
      W_INTERRUPT_STATUS,
    ])
      Atomics.store(this.words, w, 0);
    Atomics.store(this.words, W_STATUS, 0);
  }
}

/** Ranges of guest RAM the front-end checks rings against (GuestMemory satisfies it). */
export interface RingMemory {
  contains(gpa: number, len: number): boolean;
}

/** The register block a vCPU worker puts on its MMIO bus. */
export class VirtioMmioTransport implements BusDevice {
  readonly state: VirtioMmioState;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly memory: RingMemory,
    /** A QueueNotify write that was not caught by an ioeventfd: wake the back-end for `queue`. */
    private readonly notify: (queue: number) => void = () => {},
  ) {
    this.state = new VirtioMmioState(buffer);
  }

  read(offset: number, size: AccessSize): number {
    const s = this.state;
    if (offset >= VIRTIO_MMIO_CONFIG) return this.readConfig(offset - VIRTIO_MMIO_CONFIG, size);
    if (size !== REGISTER_WIDTH || offset % REGISTER_WIDTH !== 0) {
      s.countBadAccess();
      return 0;
    }
    const w = s.words;
    const q = Atomics.load(w, W_QUEUE_SEL) >>> 0;
    const validQueue = q < s.queueCount;
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return VIRTIO_MMIO_VERSION_MODERN;
      case VIRTIO_MMIO_DEVICE_ID:
        return s.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_BUNVMM_VENDOR;
      case VIRTIO_MMIO_DEVICE_FEATURES: {
        const sel = Atomics.load(w, W_DEVICE_FEATURES_SEL);
        if (sel === 0) return w[W_FEATURES_LO]! >>> 0;
        if (sel === 1) return w[W_FEATURES_HI]! >>> 0;
        return 0;
      }
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return validQueue ? s.queueNumMax : 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return validQueue ? s.queueLoad(q, Q_READY) : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return s.interruptStatus;
      case VIRTIO_MMIO_STATUS:
        return s.status;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return s.configGeneration;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
      case VIRTIO_MMIO_SHM_BASE_LOW:
      case VIRTIO_MMIO_SHM_BASE_HIGH:
        return NO_SHM_REGION; // no device here has shared memory regions
      default:
        s.countBadAccess();
        return 0;
    }
  }

  write(offset: number, size: AccessSize, value: number): void {
    const s = this.state;
    if (offset >= VIRTIO_MMIO_CONFIG || size !== REGISTER_WIDTH || offset % REGISTER_WIDTH !== 0) {
      s.countBadAccess(); // config space is read-only for every device bunvmm offers
      return;
    }
    const v = value >>> 0;
    const w = s.words;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        Atomics.store(w, W_DEVICE_FEATURES_SEL, v);
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        Atomics.store(w, W_DRIVER_FEATURES_SEL, v);
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        this.writeDriverFeatures(v);
        return;
      case VIRTIO_MMIO_QUEUE_SEL:
        Atomics.store(w, W_QUEUE_SEL, v);
        return;
      case VIRTIO_MMIO_SHM_SEL:
        return; // every selection names a region that does not exist
      case VIRTIO_MMIO_QUEUE_NUM:
        this.writeQueue(Q_SIZE, v);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        this.writeQueue(Q_DESC_LO, v);
        return;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        this.writeQueue(Q_DESC_HI, v);
        return;
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
        this.writeQueue(Q_AVAIL_LO, v);
        return;
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
        this.writeQueue(Q_AVAIL_HI, v);
        return;
      case VIRTIO_MMIO_QUEUE_USED_LOW:
        this.writeQueue(Q_USED_LO, v);
        return;
      case VIRTIO_MMIO_QUEUE_USED_HIGH:
        this.writeQueue(Q_USED_HI, v);
        return;
      case VIRTIO_MMIO_QUEUE_READY:
        this.writeQueueReady(v);
        return;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        if (v < s.queueCount) {
          Atomics.add(w, W_NOTIFIES, 1);
          this.notify(v);
        } else s.countBadAccess();
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        Atomics.and(w, W_INTERRUPT_STATUS, ~v);
        return;
      case VIRTIO_MMIO_STATUS:
        this.writeStatus(v);
        return;
      default:
        s.countBadAccess();
    }
  }

  private readConfig(at: number, size: AccessSize): number {
    const s = this.state;
    if (s.configWidth(at) !== size) {
      s.countBadAccess();
      return 0;
    }
    const c = s.config;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + c[at + i]!;
    return v;
  }

  private writeDriverFeatures(v: number): void {
    const s = this.state;
    const st = s.status;
    if ((st & VIRTIO_CONFIG_S_DRIVER) === 0 || (st & VIRTIO_CONFIG_S_FEATURES_OK) !== 0) {
      s.countRefusedTransition();
      return;
    }
    const sel = Atomics.load(s.words, W_DRIVER_FEATURES_SEL);
    if (sel === 0) Atomics.store(s.words, W_DRIVER_FEATURES_LO, v);
    else if (sel === 1) Atomics.store(s.words, W_DRIVER_FEATURES_HI, v);
    else if (v !== 0) s.countRefusedTransition(); // no feature bits exist above 63
  }

  /** The selected queue, when its set-up may change now; counts and returns -1 otherwise. */
  private configurableQueue(): number {
    const s = this.state;
    const q = Atomics.load(s.words, W_QUEUE_SEL) >>> 0;
    const st = s.status;
    const phaseOk = (st & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 && (st & VIRTIO_CONFIG_S_DRIVER_OK) === 0;
    if (q >= s.queueCount || !phaseOk || s.queueReady(q)) {
      s.countBadAccess();
      return -1;
    }
    return q;
  }

  private writeQueue(field: number, v: number): void {
    const q = this.configurableQueue();
    if (q >= 0) this.state.queueStore(q, field, v);
  }

  private writeQueueReady(v: number): void {
    const s = this.state;
    const q = Atomics.load(s.words, W_QUEUE_SEL) >>> 0;
    if (v === 0) {
      if (q < s.queueCount) s.queueStore(q, Q_READY, 0);
      else s.countBadAccess();
      return;
    }
    const qq = this.configurableQueue();
    if (qq < 0) return;
    if (v !== 1 || !this.queueSetupValid(qq)) {
      Atomics.add(s.words, W_REFUSED_QUEUES, 1);
      return;
    }
    s.queueStore(qq, Q_NEXT_AVAIL, 0);
    s.queueStore(qq, Q_NEXT_USED, 0);
    s.queueStore(qq, Q_SIGNALLED_USED, 0);
    s.queueStore(qq, Q_READY, 1); // last: publishes the set-up to the back-end
  }

  private queueSetupValid(q: number): boolean {
    const s = this.state;
    const c = s.queueConfig(q);
    if (!isPowerOfTwo(c.size) || c.size > s.queueNumMax) return false;
    const ring = (addr: number, align: number, bytes: number) =>
      addr % align === 0 && this.memory.contains(addr, bytes);
    return (
      ring(c.desc, VRING_DESC_ALIGN_SIZE, vringDescBytes(c.size)) &&
      ring(c.avail, VRING_AVAIL_ALIGN_SIZE, vringAvailBytes(c.size)) &&
      ring(c.used, VRING_USED_ALIGN_SIZE, vringUsedBytes(c.size))
    );
  }

  private writeStatus(v: number): void {
    const s = this.state;
    if (v === 0) {
      s.reset();
      // Wakes the back-end, so it lets go now of what belonged to the old driver (a vsock device
      // closes its host connections) instead of at the next driver's first notification.
      this.notify(0);
      return;
    }
    // A compare-and-swap loop: it repeats only when another writer (the back-end setting NEEDS_RESET,
    // another vCPU) changed Status in between, and then judges the write against the new value.
    for (;;) {
      const old = s.status;
      if (!this.transitionAllowed(old, v)) {
        s.countRefusedTransition();
        return;
      }
      const next = v | (old & VIRTIO_CONFIG_S_NEEDS_RESET); // the device's bit survives driver writes
      if (Atomics.compareExchange(s.words, W_STATUS, old, next) === old) return;
    }
  }

  /** Whether the driver may change Status from `old` to `v` (v != 0). */
  private transitionAllowed(old: number, v: number): boolean {
    const driverOld = old & DRIVER_STATUS_BITS;
    const added = v & ~driverOld;
    // Bits only accumulate (clearing takes a reset); NEEDS_RESET and unknown bits are not the driver's.
    if ((v & driverOld) !== driverOld || (v & ~DRIVER_STATUS_BITS) !== 0) return false;
    if (added & VIRTIO_CONFIG_S_DRIVER && !(v & VIRTIO_CONFIG_S_ACKNOWLEDGE)) return false;
    if (added & VIRTIO_CONFIG_S_FEATURES_OK) {
      const features = this.state.driverFeatures;
      if (!(v & VIRTIO_CONFIG_S_DRIVER)) return false;
      if ((features & ~this.state.deviceFeatures) !== 0n) return false;
      if (((features >> BigInt(VIRTIO_F_VERSION_1)) & 1n) !== 1n) return false;
    }
    if (added & VIRTIO_CONFIG_S_DRIVER_OK && !(v & VIRTIO_CONFIG_S_FEATURES_OK)) return false;
    return true;
  }
}

/** Every vCPU worker: the register block, whose notify fallback writes the queue's eventfd. */
export function attachVirtioMmio(spec: VirtioMmioSpec, ctx: DeviceContext, buses: Buses): void {
  const fds = new Int32Array(spec.fds);
  const notify = (queue: number) => {
    const fd = Atomics.load(fds, queue);
    if (fd >= 0) EventFd.from(fd).write();
  };
  buses.mmio.insert(
    spec.base,
    VIRTIO_MMIO_SIZE,
    new VirtioMmioTransport(spec.state, ctx.memory, notify),
    spec.name,
  );
}
