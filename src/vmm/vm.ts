/**
 * A VM's lifecycle: one state machine on the VMM thread (Created, Running, Paused, Shutdown) through
 * which every operation is serialised (inv 11), whether it comes from the library API, the CLI, the
 * REST API or the guest (power off, reset, a crashed vCPU).
 *
 * Threads: VMM thread only; nothing here blocks (inv 2). Waits on vCPUs are CpuManager's, bounded by
 * `timeoutMs` (inv 14). The API state always matches the vCPUs: a pause that times out is rolled back
 * and the state stays Running (inv 9). Reaping an ejected vCPU runs beside the queue, not in it, and
 * resize is refused until it is done (inv 10).
 */

import type { ConsolaInstance } from "consola/core";
import { GedEvent } from "../../devices/acpi-ged.ts";
import { ByteQueue, createByteQueueBuffer } from "../../devices/byte-queue.ts";
import { CPU_ENABLED, CPU_INSERTING, CPU_REMOVING } from "../../devices/cpu-hotplug-controller.ts";
import type { VmRequest } from "../../devices/vm-request.ts";
import { loadConfigFile, parseConfig, type VmConfig } from "../config/index.ts";
import { BunvmmError } from "../errors.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import type { VcpuCounters } from "../vcpu/control-block.ts";
import type { CrashReport } from "../vcpu/crash-report.ts";
import { buildMachine, closeMachine, type Machine } from "./builder.ts";
import { createLogger, type LogLevelName } from "./logger.ts";
import { SerialConsole, type SerialSink } from "./serial-console.ts";

export type VmState = "Created" | "Running" | "Paused" | "Shutdown";

/** Why a VM stopped. */
export type VmExitReason = "poweroff" | "shutdown" | "crash";

export interface VmExit {
  reason: VmExitReason;
  /** Who asked, in words ("ACPI sleep control S5", "shutdown requested", a crash summary). */
  detail: string;
  crash?: CrashReport;
}

/**
 * Where guest serial output goes, in the config's `[serial]` words: `{ mode: "tty" }` (stdout),
 * `{ mode: "file", file }` or `{ mode: "off" }`. The older `{ kind: "stdout" | "file" | "none" }`
 * (SerialSink) is still taken.
 */
export type SerialOption = { mode: "tty" } | { mode: "file"; file: string } | { mode: "off" } | SerialSink;

/** The sink a serial option or the config's `[serial]` table (validated: file goes with mode "file") names. */
function serialSink(option: SerialOption | VmConfig["serial"]): SerialSink {
  if ("kind" in option) return option;
  if (option.mode === "tty") return { kind: "stdout" };
  if (option.mode === "file") return { kind: "file", path: option.file! };
  return { kind: "none" };
}

export interface VmOptions {
  /** Where guest serial output goes; by default what the config's `[serial]` table says. */
  serial?: SerialOption;
  /** Forward this process's stdin to the guest's serial port (the CLI does when stdin is a TTY). */
  stdin?: boolean;
  /** Bound on each wait for the vCPUs (pause, resume, shutdown); default 1000 ms. */
  timeoutMs?: number;
  /** How much bunvmm logs on stderr (the CLI's --log-level); default "info". Ignored with `logger`. */
  logLevel?: LogLevelName;
  /** A consola instance to log through instead of bunvmm's own stderr logger. */
  logger?: ConsolaInstance;
}

export interface VmCounters {
  vcpus: VcpuCounters[];
  serial: { bytes_out: number; bytes_dropped: number };
  hotplug: { ignored_accesses: number; refused_ejects: number };
  vm: { reboots: number };
}

/** An operation the current state refuses ("cannot pause: the VM is Paused"). */
export class LifecycleError extends BunvmmError {
  override readonly name = "LifecycleError";
  constructor(
    readonly operation: string,
    readonly state: VmState,
  ) {
    super("refused", `cannot ${operation}: the VM is ${state}`);
  }
}

/** A resize the hotplug rules refuse: out of range, or a removal still pending (inv 10). */
export class ResizeError extends BunvmmError {
  override readonly name = "ResizeError";
  constructor(message: string) {
    super("refused", message);
  }
}

const DEFAULT_TIMEOUT_MS = 1000;
/** Serial input the guest has not read yet; small like a terminal's line buffer. */
const SERIAL_RX_CAPACITY = 1 << 12;

/** The built-in demo: four vCPUs greet and the VM powers off. */
export const DEMO_CONFIG = { cpus: { boot_vcpus: 4, max_vcpus: 4 }, memory: { size: "32M" } } as const;

/** A virtual machine: create it from a config, boot it, pause/resume/resize it, and dispose of it. */
export class Vm implements AsyncDisposable {
  private _state: VmState = "Created";
  private ops: Promise<unknown> = Promise.resolve();
  private resolveExit!: (exit: VmExit) => void;
  private stdinListener: ((data: Buffer) => void) | undefined;
  private machine: Machine;
  private _reboots = 0;
  /** Resolves once, when the VM has stopped and released its host resources (or leaked stuck ones). */
  readonly exited: Promise<VmExit>;
  /** Guest serial output (text, stream, waitFor) and input (write). */
  readonly serial: SerialConsole;
  private readonly serialQueues: { tx: ByteQueue; rx: ByteQueue };
  private readonly log: ConsolaInstance;
  private readonly timeoutMs: number;

  private constructor(
    /** The config in force; `cpus.boot_vcpus` follows resizes, as cloud-hypervisor's vm.info does. */
    readonly config: VmConfig,
    options: VmOptions,
  ) {
    this.log = options.logger ?? createLogger(options.logLevel);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
    this.serialQueues = {
      tx: new ByteQueue(createByteQueueBuffer()),
      rx: new ByteQueue(createByteQueueBuffer(SERIAL_RX_CAPACITY)),
    };
    this.machine = this.build();
    const sink = serialSink(options.serial ?? config.serial);
    this.serial = new SerialConsole(this.serialQueues.tx, this.serialQueues.rx, sink);
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
    const resolved =
      typeof config === "string" ? await loadConfigFile(config) : parseConfig(config ?? DEMO_CONFIG);
    return new Vm(structuredClone(resolved), options);
  }

  /** Builds a machine whose events count only while it is the current one (a reboot replaces it). */
  private build(): Machine {
    let built: Machine | undefined;
    const current = () => built !== undefined && built === this.machine;
    built = buildMachine(
      this.config,
      {
        onRequest: (m) => {
          if (current()) this.guestRequest(m.request, `${m.source} (vCPU ${m.vcpu})`);
        },
        onOutcome: (_vcpu, outcome) => {
          if (current() && outcome.kind === "crashed") this.guestCrashed(outcome.report);
        },
        onReaped: (vcpu) => {
          if (current()) this.reaped(vcpu);
        },
      },
      this.serialQueues,
      (stage) => this.log.debug(stage),
    );
    return built;
  }

  get state(): VmState {
    return this._state;
  }

  /** Guest RAM, bounds-checked; valid until the VM stops or reboots. */
  get memory(): GuestMemory {
    return this.machine.memory;
  }

  /** How many times the VM restarted (guest reset or reboot()). */
  get reboots(): number {
    return this._reboots;
  }

  /** Runs `op` after every operation queued before it (inv 11). */
  private serialise<T>(op: () => Promise<T>): Promise<T> {
    const next = this.ops.then(op);
    this.ops = next.catch(() => undefined);
    return next;
  }

  private startBootVcpus(): void {
    for (let i = 0; i < this.config.cpus.boot_vcpus; i++) this.machine.cpus.start(i);
  }

  /** Starts every boot vCPU's worker. Created -> Running. */
  boot(): Promise<void> {
    return this.serialise(async () => {
      if (this._state !== "Created") throw new LifecycleError("boot", this._state);
      this.startBootVcpus();
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

  /**
   * Hot-plugs or hot-unplugs vCPUs until `desiredVcpus` are present (cloud-hypervisor's vm.resize).
   * Adding starts workers at once (parked if the VM is paused) and marks them inserting; removing
   * marks CPUs removing and pending-removal: the guest ejects them when it has taken them offline.
   * Either way the guest hears of it through the GED. Refused while a removal is pending, below 1 or
   * above max_vcpus (inv 10).
   */
  resize(desiredVcpus: number): Promise<void> {
    return this.serialise(async () => {
      if (this._state !== "Running" && this._state !== "Paused")
        throw new LifecycleError("resize", this._state);
      const max = this.config.cpus.max_vcpus;
      if (!Number.isInteger(desiredVcpus) || desiredVcpus < 1 || desiredVcpus > max) {
        throw new ResizeError(
          `desired_vcpus = ${desiredVcpus}: expected an integer from 1 to max_vcpus (${max})`,
        );
      }
      const { hotplug, ged } = this.machine.devices;
      for (let cpu = 0; cpu < max; cpu++) {
        if (hotplug.pendingRemoval(cpu)) {
          throw new ResizeError(
            `cannot resize while vCPU ${cpu} is being removed; the guest has not ejected it yet`,
          );
        }
      }
      const present = this.config.cpus.boot_vcpus;
      if (desiredVcpus === present) return;
      const { cpus, configureAp } = this.machine;
      for (let cpu = present; cpu < desiredVcpus; cpu++) {
        cpus.prepare(cpu, (vcpu, fresh) => configureAp(vcpu, cpu, fresh));
        cpus.start(cpu);
        hotplug.setStatus(cpu, CPU_ENABLED | CPU_INSERTING);
      }
      for (let cpu = desiredVcpus; cpu < present; cpu++) {
        hotplug.setPendingRemoval(cpu, true); // VMM-owned first: only it makes an eject honoured
        hotplug.setStatus(cpu, CPU_REMOVING);
      }
      this.config.cpus.boot_vcpus = desiredVcpus;
      ged.raise(GedEvent.CpuHotplug);
      this.log.debug(`resize: ${present} -> ${desiredVcpus} vCPUs`);
    });
  }

  /** The ejected vCPU's worker is gone: clear its guest-visible bits, then PENDING_REMOVAL last. */
  private reaped(cpu: number): void {
    const { hotplug } = this.machine.devices;
    hotplug.clearStatus(cpu, CPU_ENABLED | CPU_INSERTING | CPU_REMOVING);
    hotplug.setPendingRemoval(cpu, false);
    this.log.debug(`vCPU ${cpu} ejected by the guest and reaped`);
  }

  /** Restarts the guest from its payload in a fresh KVM VM (cloud-hypervisor's vm.reboot). */
  reboot(): Promise<void> {
    return this.serialise(async () => {
      if (this._state !== "Running" && this._state !== "Paused")
        throw new LifecycleError("reboot", this._state);
      await this.restart();
    });
  }

  private async restart(): Promise<void> {
    const stuck = await this.machine.cpus.kill(this.timeoutMs);
    if (stuck.length > 0) {
      await this.stop({ reason: "crash", detail: `reboot failed: vCPU(s) ${stuck.join(", ")} did not stop` });
      return;
    }
    closeMachine(this.machine);
    this.machine = this.build();
    this.startBootVcpus();
    this._state = "Running";
    this._reboots++;
    this.log.info(`rebooted (${this._reboots})`);
  }

  /** Presses the ACPI power button (GED event): a guest with ACPI shuts itself down. */
  powerButton(): Promise<void> {
    return this.serialise(async () => {
      if (this._state !== "Running") throw new LifecycleError("press the power button", this._state);
      this.machine.devices.ged.raise(GedEvent.PowerButton);
    });
  }

  /** Stops the VM from any state and releases everything; resolves with how it ended. Idempotent. */
  shutdown(): Promise<VmExit> {
    return this.serialise(() => this.stop({ reason: "shutdown", detail: "shutdown requested" }));
  }

  /** cloud-hypervisor's vm.info shape: the config (VmConfig names), the state and the RAM size. */
  info(): { config: VmConfig; state: VmState; memory_actual_size: number } {
    return {
      config: structuredClone(this.config),
      state: this._state,
      memory_actual_size: this.config.memory.size,
    };
  }

  counters(): VmCounters {
    const { hotplug } = this.machine.devices;
    return {
      vcpus: this.machine.cpus.counters(),
      serial: { bytes_out: this.serial.bytesOut, bytes_dropped: this.serial.bytesDropped },
      hotplug: { ignored_accesses: hotplug.ignoredAccesses, refused_ejects: hotplug.refusedEjects },
      vm: { reboots: this._reboots },
    };
  }

  /** RUNSTATE of each vCPU ever created ("RUNNING", "PARKED", ...), for diagnostics and tests. */
  vcpuStates(): string[] {
    return this.machine.cpus.runStates();
  }

  /** Guest-visible hotplug status bits of each possible CPU (CPEN/CINS/CRMV), for tests. */
  hotplugStatus(): number[] {
    const { hotplug } = this.machine.devices;
    return Array.from({ length: this.config.cpus.max_vcpus }, (_, cpu) => hotplug.status(cpu));
  }

  /** Power off stops the VM; reset reboots it, as on cloud-hypervisor. */
  private guestRequest(request: VmRequest, source: string): void {
    this.log.debug(`guest asked for ${request} via ${source}`);
    if (request === "poweroff") void this.serialise(() => this.stop({ reason: "poweroff", detail: source }));
    else {
      void this.serialise(async () => {
        if (this._state === "Running" || this._state === "Paused") await this.restart();
      });
    }
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
    else
      this.log.warn(
        `vCPU(s) ${stuck.join(", ")} did not exit within ${this.timeoutMs} ms; leaving their memory mapped`,
      );
    this.resolveExit(exit);
    return exit;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
