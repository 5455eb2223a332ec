/**
 * A VM's lifecycle: one state machine on the VMM thread (Created, Running, Paused, Shutdown) through
 * which every operation is serialised (inv 11), whether it comes from the library API, the CLI, the
 * REST API or the guest (power off, reset, a crashed vCPU).
 *
 * Threads: VMM thread only; nothing here blocks (inv 2). Waits on vCPUs are CpuManager's, bounded by
 * `timeoutMs` (inv 14). The API state always matches the vCPUs: a pause that times out is rolled back
 * and the state stays Running (inv 9).
 */
import { type ConsolaInstance, consola } from "consola";
import { type VmConfig, loadConfigFile, parseConfig } from "../config/index.ts";
import type { CrashReport } from "../vcpu/crash-report.ts";
import type { VcpuCounters } from "../vcpu/control-block.ts";
import { type Machine, buildMachine, closeMachine } from "./builder.ts";
import { SerialConsole, type SerialSink } from "./serial-console.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";

export type VmState = "Created" | "Running" | "Paused" | "Shutdown";

/** Why a VM stopped. */
export type VmExitReason = "poweroff" | "reset" | "shutdown" | "crash";

export interface VmExit {
  reason: VmExitReason;
  /** Who asked, in words ("ACPI sleep control S5", "shutdown()", a crash summary). */
  detail: string;
  crash?: CrashReport;
}

export interface VmOptions {
  /** Where guest serial output goes; by default what `serial.mode` says (tty is stdout). */
  serial?: SerialSink;
  /** Forward this process's stdin to the guest's serial port (the CLI does when stdin is a TTY). */
  stdin?: boolean;
  /** Bound on each wait for the vCPUs (pause, resume, shutdown); default 1000 ms. */
  timeoutMs?: number;
  logger?: ConsolaInstance;
}

export interface VmCounters {
  vcpus: VcpuCounters[];
  serial: { bytes_out: number; bytes_dropped: number };
}

/** An operation the current state refuses ("cannot pause: the VM is Paused"). */
export class LifecycleError extends Error {
  override readonly name = "LifecycleError";
  constructor(
    readonly operation: string,
    readonly state: VmState,
  ) {
    super(`cannot ${operation}: the VM is ${state}`);
  }
}

const DEFAULT_TIMEOUT_MS = 1000;

/** The built-in demo: four vCPUs greet and the VM powers off. */
export const DEMO_CONFIG = { cpus: { boot_vcpus: 4, max_vcpus: 4 }, memory: { size: "32M" } } as const;

/** A virtual machine: create it from a config, boot it, pause/resume it, and dispose of it. */
export class Vm implements AsyncDisposable {
  private _state: VmState = "Created";
  private ops: Promise<unknown> = Promise.resolve();
  private resolveExit!: (exit: VmExit) => void;
  private stdinListener: ((data: Buffer) => void) | undefined;
  /** Resolves once, when the VM has stopped and released its host resources (or leaked stuck ones). */
  readonly exited: Promise<VmExit>;
  /** Guest serial output (text, stream, waitFor) and input (write). */
  readonly serial: SerialConsole;
  private readonly log: ConsolaInstance;
  private readonly timeoutMs: number;

  private constructor(
    readonly config: VmConfig,
    private readonly machine: Machine,
    options: VmOptions,
    log: ConsolaInstance,
  ) {
    this.log = log;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
    const sink: SerialSink =
      options.serial ??
      (config.serial.mode === "tty"
        ? { kind: "stdout" }
        : config.serial.mode === "file"
          ? { kind: "file", path: config.serial.file! }
          : { kind: "none" });
    this.serial = new SerialConsole(machine.devices.serialTx, machine.devices.serialRx, sink);
    if (options.stdin) {
      this.stdinListener = (data) => void this.serial.write(data);
      process.stdin.on("data", this.stdinListener);
    }
  }

  /**
   * Builds a VM (state Created) from a TOML path, a config object (validated like TOML), or nothing
   * (the built-in demo). @throws {ConfigError} {PayloadError} {KvmError} {HostError} with one-line messages.
   */
  static async create(config?: string | object, options: VmOptions = {}): Promise<Vm> {
    const log = options.logger ?? consola.withTag("bunvmm");
    const resolved =
      typeof config === "string" ? await loadConfigFile(config) : parseConfig(config ?? DEMO_CONFIG);
    let vm: Vm | undefined;
    const machine = buildMachine(
      resolved,
      {
        onRequest: (m) => vm?.guestRequest(m.request, `${m.source} (vCPU ${m.vcpu})`),
        onOutcome: (_vcpu, outcome) => {
          if (outcome.kind === "crashed") vm?.guestCrashed(outcome.report);
        },
      },
      (stage) => log.debug(stage),
    );
    vm = new Vm(resolved, machine, options, log);
    return vm;
  }

  get state(): VmState {
    return this._state;
  }

  /** Guest RAM, bounds-checked; valid until the VM has stopped. */
  get memory(): GuestMemory {
    return this.machine.memory;
  }

  /** Runs `op` after every operation queued before it (inv 11). */
  private serialise<T>(op: () => Promise<T>): Promise<T> {
    const next = this.ops.then(op);
    this.ops = next.catch(() => undefined);
    return next;
  }

  /** Starts every boot vCPU's worker. Created -> Running. */
  boot(): Promise<void> {
    return this.serialise(async () => {
      if (this._state !== "Created") throw new LifecycleError("boot", this._state);
      for (let i = 0; i < this.config.cpus.boot_vcpus; i++) this.machine.cpus.start(i);
      this._state = "Running";
      this.log.info(`booting ${this.machine.payloadSource} on ${this.config.cpus.boot_vcpus} vCPU(s)`);
    });
  }

  /** Parks every vCPU. Running -> Paused; on timeout rolls back, stays Running and throws. */
  pause(): Promise<void> {
    return this.serialise(async () => {
      if (this._state !== "Running") throw new LifecycleError("pause", this._state);
      await this.machine.cpus.pause(this.timeoutMs);
      this._state = "Paused";
    });
  }

  /** Paused -> Running. */
  resume(): Promise<void> {
    return this.serialise(async () => {
      if (this._state !== "Paused") throw new LifecycleError("resume", this._state);
      await this.machine.cpus.resume(this.timeoutMs);
      this._state = "Running";
    });
  }

  /** Stops the VM from any state and releases everything; resolves with how it ended. Idempotent. */
  shutdown(): Promise<VmExit> {
    return this.serialise(() => this.stop({ reason: "shutdown", detail: "shutdown requested" }));
  }

  /**
   * Hot-plugs or hot-unplugs vCPUs until `desiredVcpus` are present (cloud-hypervisor's vm.resize).
   * Refused while a removal is pending, below 1 or above max_vcpus.
   */
  resize(desiredVcpus: number): Promise<void> {
    return this.serialise(async () => {
      throw new LifecycleError(`resize to ${desiredVcpus} vCPUs (not implemented yet)`, this._state);
    });
  }

  /** Restarts the guest from its payload in the same VM (cloud-hypervisor's vm.reboot). */
  reboot(): Promise<void> {
    return this.serialise(async () => {
      throw new LifecycleError("reboot (not implemented yet)", this._state);
    });
  }

  /** Presses the ACPI power button: a guest with ACPI shuts itself down (vm.power-button). */
  powerButton(): Promise<void> {
    return this.serialise(async () => {
      throw new LifecycleError("press the power button (not implemented yet)", this._state);
    });
  }

  /** cloud-hypervisor's vm.info shape: the config (VmConfig names), the state and the RAM size. */
  info(): { config: VmConfig; state: VmState; memory_actual_size: number } {
    return { config: this.config, state: this._state, memory_actual_size: this.config.memory.size };
  }

  counters(): VmCounters {
    return {
      vcpus: this.machine.cpus.counters(),
      serial: { bytes_out: this.serial.bytesOut, bytes_dropped: this.serial.bytesDropped },
    };
  }

  /** RUNSTATE of each vCPU ("RUNNING", "PARKED", ...), for diagnostics and tests. */
  vcpuStates(): string[] {
    return this.machine.cpus.runStates();
  }

  private guestRequest(request: "poweroff" | "reset", source: string): void {
    this.log.debug(`guest asked for ${request} via ${source}`);
    void this.serialise(() => this.stop({ reason: request, detail: source }));
  }

  private guestCrashed(report: CrashReport): void {
    void this.serialise(() => this.stop({ reason: "crash", detail: report.summary, crash: report }));
  }

  private async stop(exit: VmExit): Promise<VmExit> {
    if (this._state === "Shutdown") return this.exited;
    this._state = "Shutdown";
    const stuck = await this.machine.cpus.kill(this.timeoutMs);
    await this.serial.close();
    if (this.stdinListener) {
      process.stdin.off("data", this.stdinListener);
      process.stdin.pause();
    }
    if (stuck.length === 0) closeMachine(this.machine);
    else this.log.warn(`vCPU(s) ${stuck.join(", ")} did not exit within ${this.timeoutMs} ms; leaving their memory mapped`);
    this.resolveExit(exit);
    return exit;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
