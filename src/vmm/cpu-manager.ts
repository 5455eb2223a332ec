/**
 * The VMM thread's side of the vCPUs: creates them (KVM_CREATE_VCPU, the kvm_run mapping), starts their
 * workers, and runs the pause protocol over their control blocks through the generic parkable-worker
 * lifecycle (src/vmm/worker-pool.ts). What is vCPU-specific lives here: a CMD change reaches a vCPU in
 * KVM_RUN by a kick (src/vcpu/kick.ts), and a worker's messages are guest requests, ejects and its outcome.
 *
 * Threads: VMM thread only; nothing here blocks ([vmm-never-blocks]). Checked by model/pause.pml.
 */

import type { DeviceSpec } from "../../devices/registry.ts";
import { libc } from "../../ffi/libc.ts";
import { BunvmmError } from "../errors.ts";
import { VcpuFd } from "../kvm/vcpu-fd.ts";
import type { VmFd } from "../kvm/vm-fd.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import { type VcpuState, type VcpuStateOptions, vcpuStateFromJson } from "../snapshot/vcpu-state.ts";
import { ControlBlock, KILL, SAVE_STATE, type VcpuCounters } from "../vcpu/control-block.ts";
import { installKickHandler, kick } from "../vcpu/kick.ts";
import type { VcpuOutcome } from "../vcpu/run-loop.ts";
import type { VcpuWorkerInit, VcpuWorkerMessage } from "../vcpu/worker.ts";
import { DeadlineError, within } from "./deadline.ts";
import { workerEntryUrl } from "./worker-entries.ts";
import {
  type PoolMember,
  type StuckWorker,
  WorkerPool,
  WorkerSpares,
  WorkerTimeoutError,
} from "./worker-pool.ts";

const VCPU_LABEL = "vCPU ";

/** A vCPU lifecycle wait that hit its deadline; `stuck` names each vCPU by index. */
export class VcpuTimeoutError extends WorkerTimeoutError {
  override name = "VcpuTimeoutError";
  constructor(
    operation: string,
    timeoutMs: number,
    readonly stuck: ReadonlyArray<{ vcpu: number; epoch: number; ack: number; runState: string }>,
    outcome: string,
  ) {
    super(
      operation,
      timeoutMs,
      stuck.map((s) => ({
        label: `${VCPU_LABEL}${s.vcpu}`,
        epoch: s.epoch,
        ack: s.ack,
        runState: s.runState,
      })),
      outcome,
    );
  }
}

interface VcpuSlot extends PoolMember {
  /** Created on first use and never destroyed (KVM cannot destroy a vCPU); reused after an eject. */
  kvm?: { fd: VcpuFd; runAddr: number; runPage: Uint8Array };
  /** The answer to the SAVE_STATE request in flight, delivered by the worker's message. */
  saved?: { resolve(m: Extract<VcpuWorkerMessage, { type: "state" }>): void };
}

/** Everything a vCPU worker needs besides its own slot. */
export interface CpuManagerEnv {
  vm: VmFd;
  runSize: number;
  memory: GuestMemory;
  devices: DeviceSpec[];
  /** What a vCPU's SAVE_STATE request reads. */
  state: VcpuStateOptions;
  /** Guest requests (power off, reset), delivered on the VMM thread. */
  onRequest(message: Extract<VcpuWorkerMessage, { type: "request" }>): void;
  /** A vCPU's loop ended (killed or crashed), delivered on the VMM thread. */
  onOutcome(vcpu: number, outcome: VcpuOutcome): void;
  /** An ejected vCPU's worker is gone; the hotplug bookkeeping may be cleared (PENDING last). */
  onReaped(vcpu: number): void;
  /** vCPU workers started while the VM was being built (startVcpuSpares); closed with the manager. */
  spares?: WorkerSpares;
}

/**
 * Starts `count` vCPU workers before the VM exists, so that their modules load while the VMM thread
 * builds the VM: the guest's first instruction comes sooner. A boot starts only vCPU 0's: the others wait
 * for INIT/SIPI anyway, and more threads loading at once would slow the VMM thread on a small host.
 */
export function startVcpuSpares(count: number): WorkerSpares {
  const spares = new WorkerSpares();
  spares.start(workerEntryUrl("vcpu"), count);
  return spares;
}

const vcpuOf = (s: StuckWorker): number => Number(s.label.slice(VCPU_LABEL.length));

/** vCPU slots, their workers and the pause protocol's VMM side. */
export class CpuManager {
  /** Allocated for every possible vCPU up front, so any vCPU's device handler can KILL any other. */
  private readonly slots: VcpuSlot[];
  private readonly pool: WorkerPool<VcpuSlot>;
  private closed = false;

  constructor(
    private readonly env: CpuManagerEnv,
    readonly maxVcpus: number,
  ) {
    installKickHandler();
    this.slots = Array.from({ length: maxVcpus }, (_, index) => ({
      index,
      label: `${VCPU_LABEL}${index}`,
      control: new ControlBlock(),
    }));
    this.pool = new WorkerPool(this.slots, {
      noun: "vCPU",
      spares: env.spares,
      // A parked vCPU sleeps on CMD, which every change notifies: only pause and kill need a kick out of KVM_RUN.
      wake: (s, change) => {
        if ((change === "pause" || change === "kill") && s.kvm) kick(s.kvm.runPage, s.control.threadId);
      },
      onEnded: (s) => {
        s.control.threadId = 0n; // that thread is gone: never signal it again
      },
      timeoutError: (operation, timeoutMs, stuck, outcome) =>
        new VcpuTimeoutError(
          operation,
          timeoutMs,
          stuck.map((s) => ({ vcpu: vcpuOf(s), epoch: s.epoch, ack: s.ack, runState: s.runState })),
          outcome,
        ),
    });
  }

  /** Ends the spare workers no `start` took (a restore started one per saved vCPU). */
  dropSpares(): void {
    this.env.spares?.close();
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

  /** Starts vCPU `index`'s worker (parked at once when the VM is paused). */
  start(index: number): void {
    const s = this.slot(index);
    if (!s.kvm) throw new Error(`vCPU ${index} was never created`);
    const init: VcpuWorkerInit = {
      index,
      vcpuFd: s.kvm.fd.fd,
      vmFd: this.env.vm.fd,
      runAddr: s.kvm.runAddr,
      runSize: this.env.runSize,
      controls: this.slots.map((x) => x.control.buffer),
      memory: this.env.memory.descriptors,
      devices: this.env.devices,
      state: this.env.state,
    };
    this.pool.spawn(s, workerEntryUrl("vcpu"), init, {
      onMessage: (data) => {
        const m = data as VcpuWorkerMessage;
        if (m.type === "request") this.env.onRequest(m);
        else if (m.type === "eject") void this.reap(m.vcpu);
        else if (m.type === "state") s.saved?.resolve(m);
        else {
          this.env.onOutcome(m.vcpu, m.outcome);
          return true;
        }
        return false;
      },
      onError: (message) =>
        this.env.onOutcome(index, {
          kind: "crashed",
          report: { vcpu: index, summary: `vCPU ${index} worker error: ${message}`, registers: [] },
        }),
    });
  }

  /**
   * After a guest eject: the device already set KILL on the victim (from the ejecting vCPU, which did
   * not wait, [no-vcpu-waits-vcpu]). Kick it out of KVM_RUN, wait (bounded) for it to exit, end its
   * worker, and only then let the caller clear the hotplug bits. Idempotent; runs outside the lifecycle
   * queue, and resize is refused until it finished (the caller clears PENDING_REMOVAL last,
   * [hotplug-owner-bits]).
   */
  reap(index: number): Promise<void> {
    if (this.closed) return Promise.resolve(); // an eject delivered after shutdown: nothing left to reap
    return this.pool.reap(this.slot(index), () => this.env.onReaped(index));
  }

  /** Parks every active vCPU, all or nothing ([all-or-nothing]); throws VcpuTimeoutError after rolling back. */
  pause(timeoutMs: number): Promise<void> {
    return this.pool.pause(timeoutMs);
  }

  /** Only before any worker starts: the vCPUs start parked (a restored VM starts Paused). */
  startPaused(): void {
    this.pool.startPaused();
  }

  /**
   * The VM is paused: every vCPU with a running worker (and no KILL pending) reads its own state in the park (a SAVE_STATE
   * request, [served-while-parked]) and posts it. Resolves with the states by vCPU index; throws a
   * VcpuTimeoutError when one did not answer within `timeoutMs` (the VM stays paused), or the error a
   * vCPU met reading its state.
   */
  async saveStates(timeoutMs: number): Promise<VcpuState[]> {
    // Not asked: a vCPU with KILL set (a guest eject still in flight when the VM paused). It exits and
    // is reaped; it has no state to keep. No new KILL appears while paused (no guest runs), so this set
    // holds for the whole save (model/pause.pml found the case: such a vCPU never serves).
    const members = this.pool.active().filter((s) => !(s.control.cmd & KILL));
    const answers = members.map(
      (s) =>
        new Promise<Extract<VcpuWorkerMessage, { type: "state" }>>((resolve) => {
          s.saved = { resolve };
        }),
    );
    try {
      for (const s of members) s.control.request = SAVE_STATE;
      await this.pool.serve(members, "save the vCPUs' state", timeoutMs);
      // Each worker posted its answer before acknowledging, so the messages are already on their way.
      const got = await within(Promise.all(answers), timeoutMs);
      if (!got) throw new DeadlineError("the vCPUs' saved state (they acknowledged the save)", timeoutMs);
      return got.map((m) => {
        if (!m.state) throw new BunvmmError("host", `vCPU ${m.vcpu} could not read its state: ${m.error}`);
        return vcpuStateFromJson(m.state, `vCPU ${m.vcpu}`);
      });
    } finally {
      for (const s of members) s.saved = undefined;
    }
  }

  /** Resolves when every started vCPU worker acknowledged its start (parked, when started paused). */
  settle(timeoutMs: number): Promise<void> {
    return this.pool.settle(timeoutMs);
  }

  /** Indices of the vCPUs whose worker runs (present, or hot-removed but not yet ejected). */
  activeVcpus(): number[] {
    return this.pool.active().map((s) => s.index);
  }

  /** How many vCPU slots were ever created (KVM_CREATE_VCPU): always 0 .. n-1. */
  get created(): number {
    return this.slots.filter((s) => s.kvm).length;
  }

  /** vCPU `index`'s fd, for VMM-thread calls while it has no worker or is parked with none in flight. */
  vcpuFd(index: number): VcpuFd | undefined {
    return this.slot(index).kvm?.fd;
  }

  /** Un-parks every vCPU; resolves when each acknowledged the new epoch as RUNNING (or EXITED). */
  resume(timeoutMs: number): Promise<void> {
    return this.pool.resume(timeoutMs);
  }

  /** KILL every vCPU and wait for them to exit; then ends the workers. Returns vCPUs that did not exit. */
  async kill(timeoutMs: number): Promise<number[]> {
    return (await this.pool.kill(timeoutMs)).map((s) => s.index);
  }

  /** Unmaps run pages and closes vCPU fds. Only after `kill` returned no stuck vCPUs. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropSpares();
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
