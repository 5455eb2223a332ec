/**
 * The lifecycle every parkable worker shares, vCPU or device back-end: spawn it on a fresh control
 * block, ask it to park, resume or exit under a new epoch, wait (bounded) for its acknowledgement, roll
 * a failed pause back, and reap it. What differs per kind of worker is how a CMD change reaches a worker
 * that is blocked somewhere other than on CMD: a vCPU in KVM_RUN is kicked (src/vcpu/kick.ts), a device
 * worker in poll(2) gets its control eventfd written. The pool calls the member's `wake` for that.
 *
 * Threads: VMM thread only. It never blocks: every wait is Atomics.waitAsync with a deadline
 * ([vmm-never-blocks], [bounded-waits]), and nothing is held while waiting ([no-wait-holding]: there is
 * no lock; shared state is lock-free words). Acknowledgements are epochs ([epoch-acks]). Pause is all or
 * nothing ([all-or-nothing]): on its deadline it un-parks the members that did park and throws, naming
 * each member it was stuck on with its epoch and RUNSTATE. Checked by model/pause.pml.
 */
import { BunvmmError } from "../errors.ts";
import {
  ACK,
  type ControlBlock,
  EXITED,
  epochOf,
  epochReached,
  FLAG_MASK,
  KILL,
  nextEpoch,
  PARKED,
  PAUSE,
  packCmd,
  RUNNING,
  RUNSTATE_NAMES,
} from "../vcpu/control-block.ts";
import { within } from "./deadline.ts";

/** How long a worker may take to finish after it reported EXITED before the pool stops waiting for it. */
export const WORKER_CLOSE_TIMEOUT_MS = 1000;

/**
 * What a CMD change asks for; `wake` may treat them differently (a vCPU is kicked only to pause or
 * die: to resume or to serve a request it is parked, asleep on CMD, which every change notifies).
 */
export type CmdChange = "pause" | "resume" | "kill" | "serve";

/** Where one member was when a wait ran out. */
export interface StuckWorker {
  /** "vCPU 1", "device virtio-blk0". */
  readonly label: string;
  readonly epoch: number;
  readonly ack: number;
  readonly runState: string;
}

/** A lifecycle wait that hit its deadline: names what it waited for and where each worker was. */
export class WorkerTimeoutError extends BunvmmError {
  override name = "WorkerTimeoutError";
  constructor(
    readonly operation: string,
    readonly timeoutMs: number,
    readonly stuckWorkers: readonly StuckWorker[],
    outcome: string,
  ) {
    const who = stuckWorkers
      .map((s) => `${s.label} ${s.runState} (acked epoch ${s.ack}, wanted ${s.epoch})`)
      .join(", ");
    super("timeout", `${operation} timed out after ${timeoutMs} ms waiting for ${who}; ${outcome}`);
  }
}

/**
 * Workers started ahead of need, before the pool knows what they will run: a worker's first cost is
 * loading its modules, and that can overlap the VMM thread's own work (building the VM). A spare sits
 * idle (it only set its message handler) and does not keep the process alive until a spawn takes it.
 * Whoever starts spares closes them: one never taken is terminated.
 */
export class WorkerSpares {
  private readonly idle = new Map<string, Worker[]>();

  /** Starts `count` workers on `entryUrl`. */
  start(entryUrl: string, count: number): void {
    const list = this.idle.get(entryUrl) ?? [];
    for (let i = 0; i < count; i++) {
      const worker = new Worker(entryUrl, { smol: true } as WorkerOptions);
      worker.unref();
      list.push(worker);
    }
    this.idle.set(entryUrl, list);
  }

  /** A started worker on `entryUrl`, now keeping the process alive; undefined when there is none. */
  take(entryUrl: string): Worker | undefined {
    const worker = this.idle.get(entryUrl)?.shift();
    worker?.ref();
    return worker;
  }

  /** Terminates every spare not taken. */
  close(): void {
    for (const list of this.idle.values()) for (const worker of list.splice(0)) worker.terminate();
  }
}

/** One worker slot. The pool owns `worker` and `finished`; the kind-specific manager owns the rest. */
export interface PoolMember {
  readonly index: number;
  readonly label: string;
  readonly control: ControlBlock;
  worker?: Worker;
  /** Resolves when the worker posted its last message (its outcome); it goes idle right after. */
  finished?: Promise<void>;
  reaping?: Promise<void>;
}

/** What a spawned worker's messages and errors go to. */
export interface WorkerHandlers {
  /** A message from the worker; return true for its last one (the worker is about to go idle). */
  onMessage(data: unknown): boolean;
  /** The worker threw outside its loop; the pool has already recorded it as EXITED. */
  onError(message: string): void;
}

export interface WorkerPoolOptions<M extends PoolMember> {
  /** What a member is, in messages: "vCPU", "device worker". */
  readonly noun: string;
  /** Makes `member` notice a CMD change while blocked elsewhere than on CMD (kick, eventfd write). */
  wake(member: M, change: CmdChange): void;
  /** The member's thread is gone (its slot may be reused): forget anything that pointed at it. */
  onEnded?(member: M): void;
  /** The error a timed-out operation throws (the vCPU pool keeps its own class for the API). */
  timeoutError?(operation: string, timeoutMs: number, stuck: StuckWorker[], outcome: string): Error;
  /** Workers started early; `spawn` takes one of these before it starts a new one. */
  readonly spares?: WorkerSpares;
}

/** A set of parkable workers and the pause protocol's VMM side over them. */
export class WorkerPool<M extends PoolMember> {
  /** The epoch of the latest request; every pause, resume, kill or spawn takes a new one ([epoch-acks]). */
  private epoch = 0;
  /** Whether the last completed request parked the workers: a worker spawned now parks at once. */
  private paused = false;
  /**
   * [fair-resume]: where the next resume starts waking members. With more busy workers than cores,
   * the member woken first takes a core and keeps it for the whole run window, so a fixed order would
   * always favour member 0; each resume starts one member further on.
   */
  private resumeStart = 0;
  /** Member indexes in the order the last resume woke them (observable for tests and traces). */
  private _lastResumeOrder: readonly number[] = [];

  constructor(
    readonly members: readonly M[],
    private readonly options: WorkerPoolOptions<M>,
  ) {}

  /**
   * Starts `m`'s worker from `entryUrl` and posts it `init`. Its control block starts fresh under a new
   * epoch ([epoch-acks]: a reused slot carries no stale acknowledgement, and a CMD read in a previous life
   * can no longer match), with PAUSE set when the pool is paused, so the worker parks at once. A spare
   * started from `entryUrl` (options.spares) is taken before a new Worker is started.
   */
  spawn(m: M, entryUrl: string, init: unknown, handlers: WorkerHandlers): void {
    if (m.worker) return;
    this.epoch = nextEpoch(this.epoch);
    m.control.reset(packCmd(this.epoch, this.paused ? PAUSE : 0));
    const worker =
      this.options.spares?.take(entryUrl) ?? new Worker(entryUrl, { smol: true } as WorkerOptions);
    m.worker = worker;
    m.finished = new Promise<void>((resolve) => {
      worker.onmessage = (event: MessageEvent) => {
        if (handlers.onMessage(event.data)) resolve();
      };
      worker.onerror = (event) => {
        m.control.acknowledgeExit(epochOf(m.control.cmd));
        resolve();
        handlers.onError(event.message);
      };
    });
    worker.postMessage(init);
  }

  /** Member indexes in the order the last resume (or pause rollback) woke them. */
  get lastResumeOrder(): readonly number[] {
    return this._lastResumeOrder;
  }

  /** Members whose worker runs and has not exited: the ones a request must be acknowledged by. */
  active(): M[] {
    return this.members.filter((m) => m.worker && m.control.runState !== EXITED);
  }

  /**
   * `members` rotated to start at the next resume's starting point ([fair-resume]), which then moves
   * on by one. The rotation is over positions in `members`, so exited members do not stall it.
   */
  private resumeOrder(members: readonly M[]): M[] {
    if (members.length === 0) return [];
    const start = this.resumeStart % members.length;
    this.resumeStart = (start + 1) % members.length;
    const order = [...members.slice(start), ...members.slice(0, start)];
    this._lastResumeOrder = order.map((m) => m.index);
    return order;
  }

  /**
   * Sets `set` and clears `clear` in CMD under a new epoch on each member, then wakes it ([drain-then-read]
   * is the worker's half). A resume goes round in a rotating order ([fair-resume]).
   */
  private request(set: number, clear: number, members: readonly M[], change: CmdChange): number {
    this.epoch = nextEpoch(this.epoch);
    const e = this.epoch;
    for (const m of change === "resume" ? this.resumeOrder(members) : members) {
      m.control.updateCmd((old) => packCmd(e, ((old & FLAG_MASK) | set) & ~clear));
      this.options.wake(m, change);
    }
    return e;
  }

  /** Resolves true when `m` acknowledged `epoch` in one of `states` (or exited), false at the deadline. */
  private async awaitAck(m: M, epoch: number, states: readonly number[], deadline: number): Promise<boolean> {
    for (;;) {
      const ack = Atomics.load(m.control.words, ACK);
      const state = m.control.runState;
      if (state === EXITED || (epochReached(ack, epoch) && states.includes(state))) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const r = Atomics.waitAsync(m.control.words, ACK, ack, left);
      if (r.async) await r.value;
    }
  }

  /** Waits for every member; returns the ones that did not acknowledge in time. */
  async awaitAll(
    members: readonly M[],
    epoch: number,
    states: readonly number[],
    timeoutMs: number,
  ): Promise<StuckWorker[]> {
    const deadline = performance.now() + timeoutMs;
    const done = await Promise.all(members.map((m) => this.awaitAck(m, epoch, states, deadline)));
    return members
      .filter((_, i) => !done[i])
      .map((m) => ({
        label: m.label,
        epoch,
        ack: m.control.ack,
        runState: RUNSTATE_NAMES[m.control.runState] ?? "?",
      }));
  }

  private timeout(operation: string, timeoutMs: number, stuck: StuckWorker[], outcome: string): Error {
    return (
      this.options.timeoutError?.(operation, timeoutMs, stuck, outcome) ??
      new WorkerTimeoutError(operation, timeoutMs, stuck, outcome)
    );
  }

  /**
   * Parks every active member: resolves when all acknowledged the new epoch as PARKED (or EXITED). On the
   * deadline, un-parks the ones that did park and throws ([all-or-nothing]).
   */
  async pause(timeoutMs: number): Promise<void> {
    const members = this.active();
    const epoch = this.request(PAUSE, 0, members, "pause");
    const stuck = await this.awaitAll(members, epoch, [PARKED], timeoutMs);
    if (stuck.length === 0) {
      this.paused = true;
      return;
    }
    const parked = members.filter((m) => m.control.runState === PARKED);
    const back = this.request(0, PAUSE, this.active(), "resume");
    const notBack = await this.awaitAll(parked, back, [RUNNING], timeoutMs);
    throw this.timeout(
      "pause",
      timeoutMs,
      stuck,
      notBack.length === 0
        ? `rolled back: every ${this.options.noun} is running`
        : `rollback also stuck on ${notBack.map((s) => s.label).join(", ")}`,
    );
  }

  /**
   * Only before the first spawn: workers start parked, as if the pool had been paused (a restored VM
   * starts Paused and resumes like any paused VM).
   */
  startPaused(): void {
    this.paused = true;
  }

  /**
   * After spawning: resolves when every active member acknowledged its start epoch as PARKED (the pool
   * is paused) or RUNNING; throws at the deadline naming the ones still starting.
   */
  async settle(timeoutMs: number): Promise<void> {
    const state = this.paused ? PARKED : RUNNING;
    const stuck = (
      await Promise.all(
        this.active().map((m) => this.awaitAll([m], epochOf(m.control.cmd), [state], timeoutMs)),
      )
    ).flat();
    if (stuck.length)
      throw this.timeout("start", timeoutMs, stuck, `some ${this.options.noun}s did not start`);
  }

  /**
   * The pool is paused: each of `members` has its REQUEST word set by the caller; a new epoch with PAUSE
   * kept wakes them in the park, where each serves its request and acknowledges the epoch as PARKED
   * ([served-while-parked]). Resolves when all did; on the deadline throws, naming each one still
   * serving (the VM stays paused: nothing to roll back).
   */
  async serve(members: readonly M[], what: string, timeoutMs: number): Promise<void> {
    if (!this.paused) throw new Error(`cannot ${what}: the ${this.options.noun}s are not paused`);
    const epoch = this.request(0, 0, members, "serve");
    const stuck = await this.awaitAll(members, epoch, [PARKED], timeoutMs);
    if (stuck.length) throw this.timeout(what, timeoutMs, stuck, `the VM stays paused`);
  }

  /** Un-parks every member; resolves when each acknowledged the new epoch as RUNNING (or EXITED). */
  async resume(timeoutMs: number): Promise<void> {
    const members = this.active();
    const epoch = this.request(0, PAUSE, members, "resume");
    this.paused = false;
    const stuck = await this.awaitAll(members, epoch, [RUNNING], timeoutMs);
    if (stuck.length)
      throw this.timeout("resume", timeoutMs, stuck, `some ${this.options.noun}s are still parked`);
  }

  /** KILL every member and wait for them to exit; then ends the workers. Returns the members that did not exit. */
  async kill(timeoutMs: number): Promise<M[]> {
    const members = this.active();
    const epoch = this.request(KILL, 0, members, "kill");
    const stuck = await this.awaitAll(members, epoch, [], timeoutMs);
    const stuckLabels = new Set(stuck.map((s) => s.label));
    const ending = this.members.filter((m) => m.worker && !stuckLabels.has(m.label));
    await Promise.all(ending.map((m) => this.endWorker(m)));
    return this.members.filter((m) => stuckLabels.has(m.label));
  }

  /**
   * A member whose KILL another thread already set (a guest eject): wake it, wait (bounded) for EXITED,
   * end its worker, and only then call `onReaped`. Idempotent while it runs.
   */
  reap(m: M, onReaped: () => void): Promise<void> {
    if (m.reaping) return m.reaping;
    m.reaping = (async () => {
      this.options.wake(m, "kill");
      const stuck = await this.awaitAll([m], epochOf(m.control.cmd), [], WORKER_CLOSE_TIMEOUT_MS);
      const ended = stuck.length === 0 && (await this.endWorker(m));
      m.reaping = undefined;
      // A slot whose worker did not end is not reported: it must not be reused while its thread may
      // still touch shared state.
      if (ended) onReaped();
    })();
    return m.reaping;
  }

  /** Ends an exited member's worker; true once its thread is gone (then the slot may be reused). */
  async endWorker(m: M): Promise<boolean> {
    const worker = m.worker;
    if (!worker) return true;
    const closed = new Promise<true>((resolve) => worker.addEventListener("close", () => resolve(true)));
    if (m.finished) await within(m.finished, WORKER_CLOSE_TIMEOUT_MS);
    worker.terminate();
    if (!(await within(closed, WORKER_CLOSE_TIMEOUT_MS))) return false;
    m.worker = undefined;
    m.finished = undefined;
    this.options.onEnded?.(m);
    return true;
  }
}
