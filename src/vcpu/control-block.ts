/**
 * Per-vCPU control block: Int32 words in one SharedArrayBuffer, shared by the VMM thread and the
 * vCPU's worker. This is the pause protocol's whole shared state (docs/architecture.md, "The pause protocol").
 *
 *   word  name       contents                                 writers
 *   0     CMD        epoch << 3 | KICK | KILL | PAUSE          VMM (CAS), device handlers on any vCPU
 *                                                             (CAS: eject sets KILL); this vCPU clears
 *                                                             KICK (CAS). Every change is notified.
 *   1     RUNSTATE   STARTING | RUNNING | PARKED | EXITED     this vCPU only (store, before ACK)
 *   2     ACK        last epoch this vCPU acknowledged        this vCPU only (store, then notify)
 *   3..9  counters   exits by kind, pauses, kicks             this vCPU only (Atomics.add)
 *   10    REQUEST    NO_REQUEST | SAVE_STATE                  VMM sets it (store) while this vCPU is
 *                                                             parked, then bumps CMD's epoch with PAUSE
 *                                                             kept; this vCPU serves it and stores
 *                                                             NO_REQUEST before it acknowledges that epoch
 *   bytes 48..55     pthread_t of the worker thread           this vCPU, once, after it blocked the
 *                                                             kick signal; 0 until then
 *
 * Keeps [wake-on-pause-kill] (the vCPU's only blocking wait, the park, is Atomics.wait on CMD, which every PAUSE,
 * KILL or epoch change modifies and notifies), [kill-dominates] (KILL is tested before PAUSE everywhere), [epoch-acks]
 * (acknowledgements are epochs: "acked" means ACK reached the request's epoch, never a boolean),
 * [served-while-parked] (a REQUEST is served only by the parked vCPU itself, on its own thread, and is
 * done when the vCPU acknowledged the request's epoch as PARKED: it never runs the guest in between).
 * Checked by model/pause.pml and test/vcpu/pause-protocol.test.ts.
 */
export const CMD = 0;
export const RUNSTATE = 1;
export const ACK = 2;
export const EXITS = 3;
export const IO_EXITS = 4;
export const MMIO_EXITS = 5;
export const UNOWNED_PIO = 6;
export const UNOWNED_MMIO = 7;
export const PAUSES = 8;
export const KICKS = 9;
export const REQUEST = 10;
const CONTROL_WORDS = 12;
const TID_OFFSET = CONTROL_WORDS * Int32Array.BYTES_PER_ELEMENT;
const CONTROL_BYTES = TID_OFFSET + BigInt64Array.BYTES_PER_ELEMENT;

/** CMD flags. */
export const PAUSE = 1 << 0;
export const KILL = 1 << 1;
export const KICK = 1 << 2;
export const FLAG_MASK = PAUSE | KILL | KICK;
export const EPOCH_SHIFT = 3;
/** Epochs are 29 bits and wrap; compare them only with `epochReached`. */
const EPOCH_MASK = (1 << (32 - EPOCH_SHIFT)) - 1;
const EPOCH_HALF = 1 << (31 - EPOCH_SHIFT);

/** REQUEST values: what a parked vCPU is asked to do on its own thread before it acknowledges. */
export const NO_REQUEST = 0;
/** Read this vCPU's whole state (registers, MSRs, LAPIC, ...) and post it to the VMM. */
export const SAVE_STATE = 1;

/** RUNSTATE values. */
export const STARTING = 0;
export const RUNNING = 1;
export const PARKED = 2;
export const EXITED = 3;
export const RUNSTATE_NAMES = ["STARTING", "RUNNING", "PARKED", "EXITED"] as const;
export type RunStateName = (typeof RUNSTATE_NAMES)[number];

export const epochOf = (cmd: number): number => (cmd >>> EPOCH_SHIFT) & EPOCH_MASK;
export const packCmd = (epoch: number, flags: number): number =>
  ((epoch & EPOCH_MASK) << EPOCH_SHIFT) | flags | 0;
/** True when `ack` is `epoch` or later, across wrap-around. */
export const epochReached = (ack: number, epoch: number): boolean =>
  ((ack - epoch) & EPOCH_MASK) < EPOCH_HALF;
export const nextEpoch = (epoch: number): number => (epoch + 1) & EPOCH_MASK;

/** Counters a vCPU keeps about itself (read by vm.counters). */
export interface VcpuCounters {
  exits: number;
  io_exits: number;
  mmio_exits: number;
  unowned_pio: number;
  unowned_mmio: number;
  pauses: number;
  kicks: number;
}

/** Typed access to one vCPU's control block; both sides construct one over the same buffer. */
export class ControlBlock {
  readonly words: Int32Array;
  private readonly tid: BigInt64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(CONTROL_BYTES)) {
    this.words = new Int32Array(buffer, 0, CONTROL_WORDS);
    this.tid = new BigInt64Array(buffer, TID_OFFSET, 1);
  }

  get cmd(): number {
    return Atomics.load(this.words, CMD);
  }
  get runState(): number {
    return Atomics.load(this.words, RUNSTATE);
  }
  get runStateName(): RunStateName {
    return RUNSTATE_NAMES[this.runState] ?? "EXITED";
  }
  get ack(): number {
    return Atomics.load(this.words, ACK);
  }

  /**
   * Atomically rewrites CMD as `update(old)` (CAS loop) and wakes a parked vCPU. Any thread; never
   * blocks (a retry happens only when another writer changed CMD in between).
   */
  updateCmd(update: (old: number) => number): number {
    for (;;) {
      const old = Atomics.load(this.words, CMD);
      const next = update(old) | 0;
      if (Atomics.compareExchange(this.words, CMD, old, next) === old) {
        Atomics.notify(this.words, CMD);
        return next;
      }
    }
  }

  /**
   * VMM only, before a (new) worker starts on this block: CMD as given, STARTING, ACK at CMD's epoch,
   * no request.
   * The block is not shared with a running vCPU at that moment.
   */
  reset(cmd: number): void {
    Atomics.store(this.words, RUNSTATE, STARTING);
    Atomics.store(this.words, REQUEST, NO_REQUEST);
    Atomics.store(this.words, ACK, epochOf(cmd));
    Atomics.store(this.words, CMD, cmd);
    Atomics.notify(this.words, CMD);
  }

  /** One compare-and-swap of CMD from `seen` to `next` (notified on success); false if CMD changed. */
  compareAndSetCmd(seen: number, next: number): boolean {
    if (Atomics.compareExchange(this.words, CMD, seen, next | 0) !== seen) return false;
    Atomics.notify(this.words, CMD);
    return true;
  }

  /**
   * This vCPU's last acknowledgement: ACK first, then EXITED as the very last store, so nothing this
   * worker writes can land after the VMM saw EXITED and reused the slot (model/pause.pml, finding 3).
   */
  acknowledgeExit(epoch: number): void {
    Atomics.store(this.words, ACK, epoch);
    Atomics.store(this.words, RUNSTATE, EXITED);
    Atomics.notify(this.words, ACK);
  }

  /** This vCPU's acknowledgement: RUNSTATE first, then ACK, then wake the waiters on ACK. */
  acknowledge(state: number, epoch: number): void {
    Atomics.store(this.words, RUNSTATE, state);
    Atomics.store(this.words, ACK, epoch);
    Atomics.notify(this.words, ACK);
  }

  /** The worker thread's pthread_t, or 0n before it can take a kick. */
  get threadId(): bigint {
    return Atomics.load(this.tid, 0);
  }
  set threadId(id: bigint) {
    Atomics.store(this.tid, 0, id);
  }

  /** The request a parked vCPU is asked to serve (NO_REQUEST when none). */
  get request(): number {
    return Atomics.load(this.words, REQUEST);
  }
  set request(value: number) {
    Atomics.store(this.words, REQUEST, value);
  }

  count(word: number, n = 1): void {
    Atomics.add(this.words, word, n);
  }

  counters(): VcpuCounters {
    const w = this.words;
    return {
      exits: Atomics.load(w, EXITS),
      io_exits: Atomics.load(w, IO_EXITS),
      mmio_exits: Atomics.load(w, MMIO_EXITS),
      unowned_pio: Atomics.load(w, UNOWNED_PIO),
      unowned_mmio: Atomics.load(w, UNOWNED_MMIO),
      pauses: Atomics.load(w, PAUSES),
      kicks: Atomics.load(w, KICKS),
    };
  }
}
