/**
 * Lock-free byte queues in a SharedArrayBuffer, between vCPU workers and the VMM thread.
 *
 *   word 0  HEAD     next slot to claim        writers: producers (CAS)
 *   word 1  TAIL     next slot to consume      writers: consumers (plain store or CAS)
 *   word 2  COMMITS  bytes published so far    writers: producers (Atomics.add), then notify; the
 *                                              consumer waits on it (waitAsync) and never misses a
 *                                              publish because it reads COMMITS before draining
 *   word 3  DROPPED  bytes refused (queue full) writers: producers (Atomics.add)
 *   then CAPACITY Int32 slots: 0 = empty, BYTE_PRESENT | byte = published
 *
 * A producer claims a slot with a CAS on HEAD (retrying only when another producer made progress),
 * stores the byte with BYTE_PRESENT, and notifies. The consumer stops at the first slot not yet
 * published, so bytes leave in claim order even when producers race. Nobody ever waits for anybody
 * ([no-vcpu-waits-vcpu]): a full queue drops and counts, it never blocks a vCPU.
 */
const HEAD = 0;
const TAIL = 1;
const COMMITS = 2;
const DROPPED = 3;
const HEADER_WORDS = 4;
const BYTE_PRESENT = 0x100;
const BYTE_MASK = 0xff;

/** Default capacity: 64 Ki bytes of guest output between two drains. */
export const BYTE_QUEUE_DEFAULT_CAPACITY = 1 << 16;

/** Allocates the shared words for a queue of `capacity` bytes (a power of two). */
export function createByteQueueBuffer(capacity = BYTE_QUEUE_DEFAULT_CAPACITY): SharedArrayBuffer {
  if (capacity <= 0 || (capacity & (capacity - 1)) !== 0)
    throw new RangeError("capacity must be a power of two");
  return new SharedArrayBuffer((HEADER_WORDS + capacity) * Int32Array.BYTES_PER_ELEMENT);
}

/** One side's view of a queue; any number of threads may hold views of the same buffer. */
export class ByteQueue {
  private readonly words: Int32Array;
  private readonly mask: number;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
    this.mask = this.words.length - HEADER_WORDS - 1;
  }

  get capacity(): number {
    return this.mask + 1;
  }

  /** Publishes one byte from any thread; false (and counted) when the queue is full. */
  push(byte: number): boolean {
    const w = this.words;
    for (;;) {
      const head = Atomics.load(w, HEAD);
      if (((head - Atomics.load(w, TAIL)) | 0) > this.mask) {
        Atomics.add(w, DROPPED, 1);
        return false;
      }
      if (Atomics.compareExchange(w, HEAD, head, (head + 1) | 0) === head) {
        Atomics.store(w, HEADER_WORDS + (head & this.mask), BYTE_PRESENT | (byte & BYTE_MASK));
        Atomics.add(w, COMMITS, 1);
        Atomics.notify(w, COMMITS);
        return true;
      }
    }
  }

  /**
   * Removes one published byte, or returns -1. Several consumers may race (guest reads of the UART
   * from two vCPUs): the slot is claimed by CAS before TAIL moves, so a producer never reuses a slot
   * still being emptied; a consumer that loses the race sees the queue empty for that call.
   */
  shift(): number {
    const w = this.words;
    const tail = Atomics.load(w, TAIL);
    const slot = HEADER_WORDS + (tail & this.mask);
    const v = Atomics.load(w, slot);
    if ((v & BYTE_PRESENT) === 0) return -1;
    if (Atomics.compareExchange(w, slot, v, 0) !== v) return -1;
    Atomics.store(w, TAIL, (tail + 1) | 0);
    return v & BYTE_MASK;
  }

  /** True when a published byte is waiting. */
  get readable(): boolean {
    return (
      (Atomics.load(this.words, HEADER_WORDS + (Atomics.load(this.words, TAIL) & this.mask)) &
        BYTE_PRESENT) !==
      0
    );
  }

  /** Removes every published byte (single consumer). */
  drain(): Uint8Array {
    const out: number[] = [];
    for (let b = this.shift(); b >= 0; b = this.shift()) out.push(b);
    return Uint8Array.from(out);
  }

  /** The publish counter to pass to `waitForCommit` (read it before draining). */
  get commits(): number {
    return Atomics.load(this.words, COMMITS);
  }

  get dropped(): number {
    return Atomics.load(this.words, DROPPED);
  }

  /**
   * Resolves when a byte has been published since `seen` was read, or after `timeoutMs`. Never
   * blocks the calling thread (Atomics.waitAsync), so the VMM thread can use it ([vmm-never-blocks]).
   */
  async waitForCommit(seen: number, timeoutMs: number): Promise<void> {
    const r = Atomics.waitAsync(this.words, COMMITS, seen, timeoutMs);
    if (r.async) await r.value;
  }

  /** Wakes a consumer parked in waitForCommit without publishing (used on shutdown). */
  wake(): void {
    Atomics.add(this.words, COMMITS, 1);
    Atomics.notify(this.words, COMMITS);
  }
}
