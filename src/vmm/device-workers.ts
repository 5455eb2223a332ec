/**
 * The VMM thread's side of device workers: one Bun Worker per device back-end (DeviceType.backend),
 * each with a control block and a control eventfd, run through the same parkable-worker lifecycle as
 * the vCPUs (src/vmm/worker-pool.ts). A CMD change reaches a worker asleep in poll(2) by a write to its
 * control eventfd, made after the compare-and-swap ([drain-then-read] is the worker's half,
 * devices/device-worker-loop.ts).
 *
 * Threads: VMM thread only; nothing here blocks ([vmm-never-blocks]).
 */
import type { DeviceBackend } from "../../devices/device-type.ts";
import type { DeviceWorkerInit, DeviceWorkerMessage } from "../../devices/device-worker-loop.ts";
import { EventFd } from "../sys/eventfd.ts";
import { ControlBlock } from "../vcpu/control-block.ts";
import { WORKER_ENTRIES, type WorkerEntryName, workerEntryUrl } from "./worker-entries.ts";
import { type PoolMember, WorkerPool } from "./worker-pool.ts";

interface DeviceWorkerSlot extends PoolMember {
  readonly controlFd: EventFd;
  readonly backend: DeviceBackend;
}

/** A back-end to run: the device's name and what its type declared. */
export interface DeviceWorkerSpec {
  readonly device: string;
  readonly backend: DeviceBackend;
}

/** The entry URL of a back-end: a name from WORKER_ENTRIES, or a module URL (test back-ends). */
function entryUrl(entry: string): string {
  return entry in WORKER_ENTRIES ? workerEntryUrl(entry as WorkerEntryName) : entry;
}

export class DeviceWorkers {
  private readonly slots: DeviceWorkerSlot[];
  private readonly pool: WorkerPool<DeviceWorkerSlot>;

  constructor(
    specs: readonly DeviceWorkerSpec[],
    /** A back-end's loop ended on its own (it threw), delivered on the VMM thread. */
    private readonly onCrash: (device: string, summary: string) => void,
  ) {
    this.slots = specs.map((s, index) => ({
      index,
      label: `device ${s.device}`,
      control: new ControlBlock(),
      controlFd: EventFd.create(),
      backend: s.backend,
    }));
    // Every change is written, resume too: a parked worker waits on CMD, a running one in poll.
    this.pool = new WorkerPool(this.slots, { noun: "device worker", wake: (s) => s.controlFd.write() });
  }

  /** Starts every back-end's worker (parked at once when the pool is paused). */
  start(): void {
    for (const s of this.slots) {
      const init: DeviceWorkerInit = {
        label: s.label,
        control: s.control.buffer,
        controlFd: s.controlFd.fd,
        init: s.backend.init,
      };
      this.pool.spawn(s, entryUrl(s.backend.entry), init, {
        onMessage: (data) => {
          const { outcome } = data as DeviceWorkerMessage;
          if (outcome.kind === "crashed") this.onCrash(s.label, outcome.summary);
          return true;
        },
        onError: (message) => this.onCrash(s.label, `${s.label} worker error: ${message}`),
      });
    }
  }

  /** RUNSTATE of each device worker, by label. */
  runStates(): Record<string, string> {
    return Object.fromEntries(this.slots.map((s) => [s.label, s.control.runStateName]));
  }

  /** Only before `start`: the back-ends start parked (a restored VM starts Paused). */
  startPaused(): void {
    this.pool.startPaused();
  }

  /** Resolves when every back-end's worker acknowledged its start (parked, when started paused). */
  settle(timeoutMs: number): Promise<void> {
    return this.pool.settle(timeoutMs);
  }

  /** Parks every back-end after its request in flight; all or nothing ([all-or-nothing]). */
  pause(timeoutMs: number): Promise<void> {
    return this.pool.pause(timeoutMs);
  }

  resume(timeoutMs: number): Promise<void> {
    return this.pool.resume(timeoutMs);
  }

  /** KILL every back-end, wait for them to exit, end the workers; returns the labels that did not exit. */
  async kill(timeoutMs: number): Promise<string[]> {
    return (await this.pool.kill(timeoutMs)).map((s) => s.label);
  }

  /** Closes the control eventfds. Only after `kill` returned no stuck worker. */
  close(): void {
    for (const s of this.slots) s.controlFd.close();
  }
}
