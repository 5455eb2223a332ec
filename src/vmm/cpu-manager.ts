/**
 * The VMM thread's side of the vCPUs: creates them, starts their workers, and runs the pause protocol
 * (ARCHITECTURE.md) against their control blocks.
 *
 * Threads: VMM thread only. It never blocks: every wait for a vCPU is Atomics.waitAsync with a
 * deadline (inv 2, inv 14), and nothing is held while waiting (inv 1: there is no lock at all; device
 * state is lock-free shared words). Pause is all or nothing: on its deadline it rolls back and reports
 * the vCPU, epoch and RUNSTATE it was stuck on (inv 9). Checked by model/pause.pml.
 */

import type { DeviceSpec } from "../../devices/device-spec.ts";
import { libc } from "../../ffi/libc.ts";
import { BunvmmError } from "../errors.ts";
import { VcpuFd } from "../kvm/vcpu-fd.ts";
import type { VmFd } from "../kvm/vm-fd.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import {
  ACK,
  ControlBlock,
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
  type VcpuCounters,
} from "../vcpu/control-block.ts";
import { installKickHandler, kick } from "../vcpu/kick.ts";
import type { VcpuOutcome } from "../vcpu/run-loop.ts";
import type { VcpuWorkerInit, VcpuWorkerMessage } from "../vcpu/worker.ts";
import { within } from "./deadline.ts";

/**
 * The vCPU worker's entry point. In a `bun build --compile` binary, entry points live in an embedded
 * file system rooted at the entry points' common folder (src/), and are named relative to it.
 */
const VCPU_WORKER_URL = import.meta.url.includes("/$bunfs/")
  ? "./vcpu/worker.ts"
  : new URL("../vcpu/worker.ts", import.meta.url).href;

/** How long a worker may take to finish after it reported EXITED before we stop waiting for it. */
const WORKER_CLOSE_TIMEOUT_MS = 1000;

/** A lifecycle wait that hit its deadline: names what it waited for and where each vCPU was. */
export class VcpuTimeoutError extends BunvmmError {
  override readonly name = "VcpuTimeoutError";
  constructor(
    readonly operation: string,
    readonly timeoutMs: number,
    readonly stuck: ReadonlyArray<{ vcpu: number; epoch: number; ack: number; runState: string }>,
    outcome: string,
  ) {
    const who = stuck
      .map((s) => `vCPU ${s.vcpu} ${s.runState} (acked epoch ${s.ack}, wanted ${s.epoch})`)
      .join(", ");
    super("timeout", `${operation} timed out after ${timeoutMs} ms waiting for ${who}; ${outcome}`);
  }
}

interface VcpuSlot {
  readonly index: number;
  /** Allocated for every possible vCPU up front, so any vCPU's device handler can KILL any other. */
  readonly control: ControlBlock;
  /** Created on first use and never destroyed (KVM cannot destroy a vCPU); reused after an eject. */
  kvm?: { fd: VcpuFd; runAddr: number; runPage: Uint8Array };
  worker?: Worker;
  outcome?: Promise<VcpuOutcome>;
  reaping?: Promise<void>;
}

/** Everything a vCPU worker needs besides its own slot. */
export interface CpuManagerEnv {
  vm: VmFd;
  runSize: number;
  memory: GuestMemory;
  devices: DeviceSpec[];
  /** Guest requests (power off, reset), delivered on the VMM thread. */
  onRequest(message: Extract<VcpuWorkerMessage, { type: "request" }>): void;
  /** A vCPU's loop ended (killed or crashed), delivered on the VMM thread. */
  onOutcome(vcpu: number, outcome: VcpuOutcome): void;
  /** An ejected vCPU's worker is gone; the hotplug bookkeeping may be cleared (PENDING last). */
  onReaped(vcpu: number): void;
}

/** vCPU slots, their workers and the pause protocol's VMM side. */
export class CpuManager {
  private readonly slots: VcpuSlot[];
  /** The epoch of the latest request; every pause, resume or kill takes a new one (inv 6). */
  private epoch = 0;
  /** Whether the last completed request parked the vCPUs: a vCPU started now parks at once. */
  private paused = false;
  private closed = false;

  constructor(
    private readonly env: CpuManagerEnv,
    readonly maxVcpus: number,
  ) {
    installKickHandler();
    this.slots = Array.from({ length: maxVcpus }, (_, index) => ({ index, control: new ControlBlock() }));
  }

  private slot(index: number): VcpuSlot {
    const s = this.slots[index];
    if (!s) throw new RangeError(`vCPU ${index} is beyond max_vcpus ${this.maxVcpus}`);
    return s;
  }

  /**
   * KVM_CREATE_VCPU (first time only), map its kvm_run page, and let the caller set registers before
   * any worker runs it. For a reused slot only `configure` runs, told `fresh = false`.
   */
  prepare(index: number, configure: (vcpu: VcpuFd, fresh: boolean) => void): void {
    const s = this.slot(index);
    if (s.worker) throw new Error(`vCPU ${index} still has a worker`);
    const fresh = !s.kvm;
    if (!s.kvm) {
      const fd = new VcpuFd(this.env.vm.createVcpu(index));
      const run = fd.mapKvmRun(this.env.runSize);
      s.kvm = { fd, runAddr: run.address, runPage: run.bytes };
    }
    configure(s.kvm.fd, fresh);
  }

  /**
   * Starts vCPU `index`'s worker. Its control block starts fresh under a new epoch (inv 6: a reused
   * slot carries no stale acknowledgement), with PAUSE set when the VM is paused, so the new vCPU
   * parks at its first checkpoint.
   */
  start(index: number): void {
    const s = this.slot(index);
    if (!s.kvm) throw new Error(`vCPU ${index} was never created`);
    if (s.worker) return;
    // A fresh epoch: an eject that read this slot's CMD in a previous life can no longer match it
    // (model/pause.pml, the eject ABA).
    this.epoch = nextEpoch(this.epoch);
    s.control.reset(packCmd(this.epoch, this.paused ? PAUSE : 0));
    const worker = new Worker(VCPU_WORKER_URL, { smol: true } as WorkerOptions);
    s.worker = worker;
    s.outcome = new Promise<VcpuOutcome>((resolve) => {
      worker.onmessage = (event: MessageEvent<VcpuWorkerMessage>) => {
        const m = event.data;
        if (m.type === "request") this.env.onRequest(m);
        else if (m.type === "eject") void this.reap(m.vcpu);
        else {
          resolve(m.outcome);
          this.env.onOutcome(m.vcpu, m.outcome);
        }
      };
      worker.onerror = (event) => {
        const outcome: VcpuOutcome = {
          kind: "crashed",
          report: { vcpu: index, summary: `vCPU ${index} worker error: ${event.message}`, registers: [] },
        };
        s.control.acknowledgeExit(epochOf(s.control.cmd));
        resolve(outcome);
        this.env.onOutcome(index, outcome);
      };
    });
    const init: VcpuWorkerInit = {
      index,
      vcpuFd: s.kvm.fd.fd,
      vmFd: this.env.vm.fd,
      runAddr: s.kvm.runAddr,
      runSize: this.env.runSize,
      controls: this.slots.map((x) => x.control.buffer),
      memory: this.env.memory.descriptors,
      devices: this.env.devices,
    };
    worker.postMessage(init);
  }

  /**
   * After a guest eject: the device already set KILL on the victim (from the ejecting vCPU, which
   * did not wait, inv 5). Kick it out of KVM_RUN, wait (bounded) for it to exit, end its worker, and
   * only then let the caller clear the hotplug bits. Idempotent; runs outside the lifecycle queue,
   * and resize is refused until it finished (the caller clears PENDING_REMOVAL last, inv 10).
   */
  reap(index: number): Promise<void> {
    const s = this.slot(index);
    if (s.reaping) return s.reaping;
    if (this.closed) return Promise.resolve(); // an eject delivered after shutdown: nothing left to reap
    s.reaping = (async () => {
      if (s.kvm) kick(s.kvm.runPage, s.control.threadId);
      const stuck = await this.awaitAll([s], epochOf(s.control.cmd), [EXITED], WORKER_CLOSE_TIMEOUT_MS);
      const ended = stuck.length === 0 && (await this.endWorker(s));
      s.reaping = undefined;
      // A slot whose worker did not end stays marked for removal: resize is refused rather than
      // reusing a slot another thread may still touch.
      if (ended) this.env.onReaped(index);
    })();
    return s.reaping;
  }

  /** Ends an exited vCPU's worker; true once its thread is gone (then the slot may be reused). */
  private async endWorker(s: VcpuSlot): Promise<boolean> {
    const worker = s.worker;
    if (!worker) return true;
    const closed = new Promise<true>((resolve) => worker.addEventListener("close", () => resolve(true)));
    // The outcome message comes right before the worker goes idle.
    await within(s.outcome!, WORKER_CLOSE_TIMEOUT_MS);
    worker.terminate();
    if (!(await within(closed, WORKER_CLOSE_TIMEOUT_MS))) return false;
    s.control.threadId = 0n; // that thread is gone: never signal it again
    s.worker = undefined;
    s.outcome = undefined;
    return true;
  }

  /** Slots whose worker runs and has not exited: the ones a request must be acknowledged by. */
  private active(): VcpuSlot[] {
    return this.slots.filter((s) => s.worker && s.control.runState !== EXITED);
  }

  /** Sets `flags` (and clears `clear`) under a new epoch on every active vCPU, and kicks each. */
  private request(set: number, clear: number, slots: VcpuSlot[], doKick: boolean): number {
    this.epoch = nextEpoch(this.epoch);
    const e = this.epoch;
    for (const s of slots) {
      s.control.updateCmd((old) => packCmd(e, ((old & FLAG_MASK) | set) & ~clear));
      if (doKick && s.kvm) kick(s.kvm.runPage, s.control.threadId);
    }
    return e;
  }

  /** Resolves true when the vCPU acknowledged `epoch` in one of `states`, false at the deadline. */
  private async awaitAck(
    s: VcpuSlot,
    epoch: number,
    states: readonly number[],
    deadline: number,
  ): Promise<boolean> {
    for (;;) {
      const ack = Atomics.load(s.control.words, ACK);
      const state = s.control.runState;
      if (state === EXITED || (epochReached(ack, epoch) && states.includes(state))) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const r = Atomics.waitAsync(s.control.words, ACK, ack, left);
      if (r.async) await r.value;
    }
  }

  private async awaitAll(slots: VcpuSlot[], epoch: number, states: readonly number[], timeoutMs: number) {
    const deadline = performance.now() + timeoutMs;
    const done = await Promise.all(slots.map((s) => this.awaitAck(s, epoch, states, deadline)));
    return slots
      .filter((_, i) => !done[i])
      .map((s) => ({
        vcpu: s.index,
        epoch,
        ack: s.control.ack,
        runState: RUNSTATE_NAMES[s.control.runState] ?? "?",
      }));
  }

  /**
   * Parks every active vCPU. Resolves when all acknowledged the new epoch as PARKED or EXITED. On the
   * deadline, un-parks the ones that did park and throws VcpuTimeoutError (inv 9).
   */
  async pause(timeoutMs: number): Promise<void> {
    const slots = this.active();
    const epoch = this.request(PAUSE, 0, slots, true);
    const stuck = await this.awaitAll(slots, epoch, [PARKED], timeoutMs);
    if (stuck.length === 0) {
      this.paused = true;
      return;
    }
    const parked = slots.filter((s) => s.control.runState === PARKED);
    const back = this.request(0, PAUSE, this.active(), false);
    const notBack = await this.awaitAll(parked, back, [RUNNING], timeoutMs);
    throw new VcpuTimeoutError(
      "pause",
      timeoutMs,
      stuck,
      notBack.length === 0
        ? "rolled back: every vCPU is running"
        : `rollback also stuck on ${notBack.length} vCPU(s)`,
    );
  }

  /** Un-parks every vCPU; resolves when each acknowledged the new epoch as RUNNING (or EXITED). */
  async resume(timeoutMs: number): Promise<void> {
    const slots = this.active();
    const epoch = this.request(0, PAUSE, slots, false);
    this.paused = false;
    const stuck = await this.awaitAll(slots, epoch, [RUNNING], timeoutMs);
    if (stuck.length) throw new VcpuTimeoutError("resume", timeoutMs, stuck, "some vCPUs are still parked");
  }

  /** KILL every vCPU and wait for them to exit; then ends the workers. Returns vCPUs that did not exit. */
  async kill(timeoutMs: number): Promise<number[]> {
    const slots = this.active();
    const epoch = this.request(KILL, 0, slots, true);
    const stuck = await this.awaitAll(slots, epoch, [EXITED], timeoutMs);
    const ending = this.slots.filter((s) => s.worker && !stuck.some((x) => x.vcpu === s.index));
    await Promise.all(ending.map((s) => this.endWorker(s)));
    return stuck.map((s) => s.vcpu);
  }

  /** Unmaps run pages and closes vCPU fds. Only after `kill` returned no stuck vCPUs. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.slots) {
      if (!s.kvm) continue;
      libc.munmap(s.kvm.runAddr, this.env.runSize);
      s.kvm.fd.close();
    }
  }

  /**
   * Counters of every vCPU ever created; position = vCPU id, because slots are only ever created in
   * order from 0 (boot vCPUs, then resize adds the next ids).
   */
  counters(): VcpuCounters[] {
    return this.slots.filter((s) => s.kvm).map((s) => s.control.counters());
  }

  /** RUNSTATE of every vCPU ever created, by index. */
  runStates(): string[] {
    return this.slots.filter((s) => s.kvm).map((s) => s.control.runStateName);
  }
}
