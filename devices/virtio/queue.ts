/**
 * The device side of a split virtqueue, hardened against a hostile driver: pops available descriptor
 * chains, validates every descriptor, publishes used elements and decides whether the driver wants an
 * interrupt (VIRTIO_RING_F_EVENT_IDX or the avail ring's NO_INTERRUPT flag). Supports indirect
 * descriptor tables (VIRTIO_RING_F_INDIRECT_DESC).
 *
 * Threads: run by the thread that owns the device's back-end (a device worker; tests run it on their
 * own thread). Queue set-up and ring indices live in the transport's shared words (mmio-transport.ts),
 * so they survive a pause and can be saved; only this side writes NEXT_AVAIL, NEXT_USED and
 * SIGNALLED_USED.
 *
 * What a chain is refused for (the chain comes back with `error` set; the back-end fails that request
 * with used length 0, and the device carries on):
 *  - a descriptor index outside its table, or a walk longer than the table (a loop);
 *  - a buffer of length 0 or not wholly inside guest RAM, or an address above 2^53;
 *  - a device-readable buffer after a device-writable one;
 *  - an indirect descriptor when INDIRECT_DESC was not negotiated, one with NEXT also set, one inside
 *    an indirect table (nesting), or a table whose length is 0, not a multiple of 16, larger than
 *    VIRTQ_MAX_SIZE entries, or outside RAM.
 * What stops the queue (NEEDS_RESET, until the driver resets the device): an avail index more than the
 * queue size ahead of the device, or a head index outside the descriptor table (no used element could
 * name it).
 *
 * Memory ordering. The driver runs on other CPUs and writes the rings concurrently. The avail and used
 * indices are read and written with Atomics on 16-bit views of guest RAM (Atomics work on non-shared
 * buffers too): a sequentially consistent load of avail.idx keeps the later reads of ring entries and
 * descriptors after it (the spec's read barrier), and the store of used.idx comes after the used element
 * is written (its write barrier). Before reading used_event or avail.flags to decide on an interrupt,
 * and before re-reading avail.idx after publishing avail_event, a StoreLoad fence is needed; the
 * sequentially consistent Atomics.store before it provides one (a locked instruction or mfence on x86).
 * Descriptors themselves are plain reads: the driver wrote them before its release of avail.idx and x86
 * does not reorder loads with loads.
 */
import {
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VRING_AVAIL_ENTRY_SIZE,
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_AVAIL_LAYOUT,
  VRING_AVAIL_RING,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_LAYOUT,
  VRING_USED_ELEM_LAYOUT,
  VRING_USED_LAYOUT,
  VRING_USED_RING,
} from "../../ffi/virtio-layouts.ts";
import type { GuestMemory } from "../../src/memory/guest-memory.ts";
import {
  Q_NEXT_AVAIL,
  Q_NEXT_USED,
  Q_SIGNALLED_USED,
  type QueueConfig,
  VIRTQ_MAX_SIZE,
  type VirtioMmioState,
} from "./mmio-transport.ts";

/** One guest buffer of a chain. */
export interface GuestBuffer {
  readonly addr: number;
  readonly len: number;
}

/** A popped descriptor chain. */
export interface Chain {
  /** The head descriptor index: the id of its used element. */
  readonly head: number;
  /** The transport's reset epoch when it was popped: a chain from an older epoch is never published. */
  readonly epoch: number;
  /** Device-readable buffers, in order, then device-writable ones. */
  readonly readable: GuestBuffer[];
  readonly writable: GuestBuffer[];
  /** Why the chain is refused; null for a well-formed chain. */
  readonly error: string | null;
}

const U16_MASK = 0xffff;
const D = VRING_DESC_LAYOUT.fields;
const DESC_SIZE = VRING_DESC_LAYOUT.size;
const USED_ELEM_SIZE = VRING_USED_ELEM_LAYOUT.size;

/** Views of the ring words touched with Atomics, rebuilt when the queue's set-up changes. */
interface RingViews {
  readonly key: string;
  readonly config: QueueConfig;
  readonly availFlags: Uint16Array;
  readonly availIdx: Uint16Array;
  readonly usedEvent: Uint16Array;
  readonly usedIdx: Uint16Array;
  readonly availEvent: Uint16Array;
}

export class SplitQueue {
  private views: RingViews | null = null;
  /** This queue set NEEDS_RESET (and the config-change bit): the next signalIfNeeded raises the line. */
  private configInterruptPending = false;
  /** Chains refused since creation (the back-end also counts the requests it failed). */
  badChains = 0;

  constructor(
    readonly state: VirtioMmioState,
    readonly index: number,
    private readonly memory: GuestMemory,
  ) {}

  /** True when the device may process this queue now (DRIVER_OK, no NEEDS_RESET, queue ready). */
  get ready(): boolean {
    return this.state.live && this.state.queueReady(this.index);
  }

  private u16(gpa: number): Uint16Array {
    const b = this.memory.slice(gpa, VRING_AVAIL_ENTRY_SIZE);
    return new Uint16Array(b.buffer, b.byteOffset, 1);
  }

  /**
   * Views over the rings as the queue is set up now, or null when it is not set up. The driver may reset
   * the device from a vCPU at any moment ([reset-races-device]): the shared words can read as zero (or
   * half-written) under the back-end, so the size is checked here and every caller re-checks the reset
   * epoch after building its views; a ring address that moved out of RAM in between throws
   * GuestMemoryError, which the device worker takes as "this queue stopped".
   */
  private ringViews(): RingViews | null {
    const config = this.state.queueConfig(this.index);
    if (config.size === 0 || (config.size & (config.size - 1)) !== 0 || config.size > VIRTQ_MAX_SIZE)
      return null;
    const key = `${this.state.resetEpoch}:${config.size}:${config.desc}:${config.avail}:${config.used}`;
    if (this.views?.key === key) return this.views;
    const { size, avail, used } = config;
    this.views = {
      key,
      config,
      availFlags: this.u16(avail + VRING_AVAIL_LAYOUT.fields.flags.offset),
      availIdx: this.u16(avail + VRING_AVAIL_LAYOUT.fields.idx.offset),
      usedEvent: this.u16(avail + VRING_AVAIL_RING + VRING_AVAIL_ENTRY_SIZE * size),
      usedIdx: this.u16(used + VRING_USED_LAYOUT.fields.idx.offset),
      availEvent: this.u16(used + VRING_USED_RING + USED_ELEM_SIZE * size),
    };
    return this.views;
  }

  /**
   * The next available chain, or null when there is none, the queue is not live, or the driver broke
   * the ring (then NEEDS_RESET is set). Never throws on guest data.
   */
  pop(): Chain | null {
    if (!this.ready) return null;
    const epoch = this.state.resetEpoch;
    const v = this.ringViews();
    if (v === null || this.state.resetEpoch !== epoch) return null;
    const { size } = v.config;
    const eventIdx = this.state.negotiated(VIRTIO_RING_F_EVENT_IDX);
    const nextAvail = this.state.queueLoad(this.index, Q_NEXT_AVAIL);
    let availIdx = Atomics.load(v.availIdx, 0);
    if (availIdx === nextAvail && eventIdx) {
      // Ask to be notified when the driver adds the next one, then look again: a chain added before
      // the driver saw avail_event would otherwise wait for a notification that never comes.
      Atomics.store(v.availEvent, 0, nextAvail);
      availIdx = Atomics.load(v.availIdx, 0);
    }
    const pending = (availIdx - nextAvail) & U16_MASK;
    if (pending === 0) return null;
    if (pending > size) {
      this.needsReset();
      return null;
    }
    const ring = v.config.avail + VRING_AVAIL_RING + VRING_AVAIL_ENTRY_SIZE * (nextAvail % size);
    const head = this.memory.slice(ring, VRING_AVAIL_ENTRY_SIZE);
    const headIndex = head[0]! | (head[1]! << 8);
    this.state.queueStore(this.index, Q_NEXT_AVAIL, (nextAvail + 1) & U16_MASK);
    if (eventIdx) Atomics.store(v.availEvent, 0, (nextAvail + 1) & U16_MASK);
    if (headIndex >= size) {
      this.needsReset();
      return null;
    }
    const chain = this.walk(headIndex, epoch, v.config);
    if (chain.error !== null) this.badChains++;
    return chain;
  }

  private needsReset(): void {
    if (this.state.setNeedsReset()) this.configInterruptPending = true;
  }

  /** Follows the chain from `head`; stops at the first rule it breaks. */
  private walk(head: number, epoch: number, config: QueueConfig): Chain {
    const readable: GuestBuffer[] = [];
    const writable: GuestBuffer[] = [];
    const fail = (error: string): Chain => ({ head, epoch, readable, writable, error });
    let table = config.desc;
    let entries = config.size;
    let indirect = false;
    let index = head;
    let steps = 0;
    for (;;) {
      if (index >= entries) return fail(`descriptor index ${index} outside a table of ${entries}`);
      if (++steps > entries) return fail(`descriptor chain from ${head} loops`);
      const d = this.memory.slice(table + index * DESC_SIZE, DESC_SIZE);
      const dv = new DataView(d.buffer, d.byteOffset, DESC_SIZE);
      const addr64 = dv.getBigUint64(D.addr.offset, true);
      const len = dv.getUint32(D.len.offset, true);
      const flags = dv.getUint16(D.flags.offset, true);
      const next = dv.getUint16(D.next.offset, true);
      if (addr64 > BigInt(Number.MAX_SAFE_INTEGER)) return fail(`buffer address 0x${addr64.toString(16)}`);
      const addr = Number(addr64);
      if (flags & VRING_DESC_F_INDIRECT) {
        if (indirect) return fail("an indirect descriptor inside an indirect table");
        if (!this.state.negotiated(VIRTIO_RING_F_INDIRECT_DESC)) return fail("INDIRECT_DESC not negotiated");
        if (flags & VRING_DESC_F_NEXT) return fail("an indirect descriptor with NEXT set");
        const count = len / DESC_SIZE;
        if (len === 0 || !Number.isInteger(count) || count > VIRTQ_MAX_SIZE)
          return fail(`an indirect table of ${len} bytes`);
        if (!this.memory.contains(addr, len))
          return fail(`an indirect table outside guest RAM at 0x${addr.toString(16)}`);
        table = addr;
        entries = count;
        indirect = true;
        index = 0;
        steps = 0;
        continue;
      }
      if (len === 0) return fail(`a zero-length buffer in descriptor ${index}`);
      if (!this.memory.contains(addr, len))
        return fail(`buffer 0x${addr.toString(16)}+0x${len.toString(16)} outside guest RAM`);
      if (flags & VRING_DESC_F_WRITE) writable.push({ addr, len });
      else if (writable.length > 0) return fail("a device-readable buffer after a device-writable one");
      else readable.push({ addr, len });
      if (!(flags & VRING_DESC_F_NEXT)) return { head, epoch, readable, writable, error: null };
      index = next;
    }
  }

  /**
   * Publishes `chain` as used with `len` bytes written. Returns false (and publishes nothing) when the
   * device was reset or the queue stopped since the chain was popped.
   */
  pushUsed(chain: Chain, len: number): boolean {
    if (this.state.resetEpoch !== chain.epoch || !this.state.queueReady(this.index)) return false;
    const v = this.ringViews();
    if (v === null || this.state.resetEpoch !== chain.epoch) return false;
    const nextUsed = this.state.queueLoad(this.index, Q_NEXT_USED);
    const elem = v.config.used + VRING_USED_RING + USED_ELEM_SIZE * (nextUsed % v.config.size);
    const e = this.memory.slice(elem, USED_ELEM_SIZE);
    const ev = new DataView(e.buffer, e.byteOffset, USED_ELEM_SIZE);
    ev.setUint32(VRING_USED_ELEM_LAYOUT.fields.id.offset, chain.head, true);
    ev.setUint32(VRING_USED_ELEM_LAYOUT.fields.len.offset, len >>> 0, true);
    const after = (nextUsed + 1) & U16_MASK;
    Atomics.store(v.usedIdx, 0, after); // after the element: the driver sees it complete
    this.state.queueStore(this.index, Q_NEXT_USED, after);
    return true;
  }

  /**
   * After a batch of pushUsed: whether the driver asked to be interrupted for what was published since
   * the last interrupt; if so, sets the used-buffer bit of InterruptStatus (the caller raises the line).
   * Also true once after this queue set NEEDS_RESET (its config-change bit is already set).
   */
  signalIfNeeded(): boolean {
    if (this.configInterruptPending) {
      this.configInterruptPending = false;
      return true;
    }
    if (!this.state.queueReady(this.index)) return false;
    const v = this.ringViews();
    if (v === null) return false;
    const now = this.state.queueLoad(this.index, Q_NEXT_USED);
    const before = this.state.queueLoad(this.index, Q_SIGNALLED_USED);
    if (now === before) return false;
    this.state.queueStore(this.index, Q_SIGNALLED_USED, now); // seq-cst: the StoreLoad fence
    let wanted: boolean;
    if (this.state.negotiated(VIRTIO_RING_F_EVENT_IDX)) {
      const usedEvent = Atomics.load(v.usedEvent, 0);
      // The driver wants an interrupt once used.idx passes used_event: was it crossed by (before, now]?
      wanted = ((now - usedEvent - 1) & U16_MASK) < ((now - before) & U16_MASK);
    } else {
      wanted = (Atomics.load(v.availFlags, 0) & VRING_AVAIL_F_NO_INTERRUPT) === 0;
    }
    if (wanted) this.state.raiseUsedBuffer(VIRTIO_MMIO_INT_VRING);
    return wanted;
  }
}

/** Total bytes of a buffer list. */
export function totalLength(buffers: readonly GuestBuffer[]): number {
  let n = 0;
  for (const b of buffers) n += b.len;
  return n;
}

/**
 * Splits a buffer list at byte `at`: [the first `at` bytes, the rest]. `at` must not exceed the total.
 */
export function splitBuffers(buffers: readonly GuestBuffer[], at: number): [GuestBuffer[], GuestBuffer[]] {
  const front: GuestBuffer[] = [];
  const back: GuestBuffer[] = [];
  let left = at;
  for (const b of buffers) {
    if (left >= b.len) {
      front.push(b);
      left -= b.len;
    } else if (left > 0) {
      front.push({ addr: b.addr, len: left });
      back.push({ addr: b.addr + left, len: b.len - left });
      left = 0;
    } else back.push(b);
  }
  return [front, back];
}

/** Copies the bytes of a buffer list out of guest RAM. */
export function gather(memory: GuestMemory, buffers: readonly GuestBuffer[]): Uint8Array {
  const out = new Uint8Array(totalLength(buffers));
  let at = 0;
  for (const b of buffers) {
    out.set(memory.slice(b.addr, b.len), at);
    at += b.len;
  }
  return out;
}

/** Copies `data` into a buffer list (as much as fits); returns the bytes written. */
export function scatter(memory: GuestMemory, buffers: readonly GuestBuffer[], data: Uint8Array): number {
  let at = 0;
  for (const b of buffers) {
    if (at >= data.length) break;
    const n = Math.min(b.len, data.length - at);
    memory.write(b.addr, data.subarray(at, at + n));
    at += n;
  }
  return at;
}
