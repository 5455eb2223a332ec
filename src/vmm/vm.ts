/**
 * A VM's lifecycle: one state machine on the VMM thread, written down as one transition table
 * (`TRANSITIONS`), through which every operation is serialised ([serialised-lifecycle]), whether it comes
 * from the library API, the CLI, the REST API or the guest (power off, reset, a crashed vCPU).
 *
 * Threads: VMM thread only; nothing here blocks ([vmm-never-blocks]). Waits on workers are the worker
 * pools', bounded by `[vmm] lifecycle_timeout_ms` ([bounded-waits]). The API state always matches the workers: a pause
 * that times out is rolled back and the state stays Running ([all-or-nothing]). Pause parks the vCPUs
 * first, so no new notification reaches a device, then the device workers; resume wakes them in the
 * reverse order ([vcpus-before-devices]). Reaping an ejected vCPU runs beside the queue, not in it, and
 * resize is refused until it is done ([hotplug-owner-bits]).
 *
 * The config the user gave is never changed at runtime; what changes (the vCPUs present after a
 * resize) is kept apart, and vm.info reports it where cloud-hypervisor does (`cpus.boot_vcpus`).
 */

import type { ConsolaInstance } from "consola/core";
import { GedEvent } from "../../devices/acpi-ged.ts";
import { ByteQueue, createByteQueueBuffer } from "../../devices/byte-queue.ts";
import { CPU_ENABLED, CPU_INSERTING, CPU_REMOVING } from "../../devices/cpu-hotplug-controller.ts";
import type { VmRequest } from "../../devices/vm-request.ts";
import { checkLifecycleTimeout, loadConfigFile, parseConfig, type VmConfig } from "../config/index.ts";
import { BunvmmError } from "../errors.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import { readSnapshot, type SnapshotImage, snapshotPath } from "../snapshot/reader.ts";
import { machineRestore } from "../snapshot/restore.ts";
import { SnapshotError } from "../snapshot/snapshot-error.ts";
import { type SnapshotStats, writeSnapshot } from "../snapshot/writer.ts";
import type { VcpuCounters } from "../vcpu/control-block.ts";
import type { CrashReport } from "../vcpu/crash-report.ts";
import { buildMachine, closeMachine, type Machine, type MachineRestore } from "./builder.ts";
import type { DeviceCounters } from "./device-manager.ts";
import { createLogger, type LogLevelName } from "./logger.ts";
import { SerialConsole, type SerialSink } from "./serial-console.ts";

/**
 * Snapshotting: a paused VM being written to a snapshot (back to Paused when done). Restoring: a VM built
 * from a snapshot whose workers have not started yet (then Paused, or Running with `resume`).
 */
export type VmState = "Created" | "Running" | "Paused" | "Snapshotting" | "Restoring" | "Shutdown";

/** Every lifecycle operation, by the name a refusal uses ("cannot press the power button: ..."). */
type Operation =
  | "boot"
  | "pause"
  | "resume"
  | "resize"
  | "reboot"
  | "press the power button"
  | "snapshot"
  | "restore"
  | "restore and resume"
  | "shutdown";

/**
 * The transition table: the states an operation is allowed in, and the state it leaves the VM in on
 * success (none: unchanged). Anything else is refused with a LifecycleError naming the state.
 * Shutdown is allowed from every state and is idempotent; a guest reset follows `reboot`'s row.
 */
const TRANSITIONS: Readonly<Record<Operation, { from: readonly VmState[]; to?: VmState }>> = {
  boot: { from: ["Created"], to: "Running" },
  pause: { from: ["Running"], to: "Paused" },
  resume: { from: ["Paused"], to: "Running" },
  resize: { from: ["Running", "Paused"] },
  reboot: { from: ["Running", "Paused"], to: "Running" },
  "press the power button": { from: ["Running"] },
  // Only a paused VM is snapshotted (as in cloud-hypervisor and Firecracker); it is Snapshotting meanwhile.
  snapshot: { from: ["Paused"] },
  restore: { from: ["Restoring"], to: "Paused" },
  "restore and resume": { from: ["Restoring"], to: "Running" },
  shutdown: {
    from: ["Created", "Running", "Paused", "Snapshotting", "Restoring", "Shutdown"],
    to: "Shutdown",
  },
};

/** True when the table allows `operation` in `state`. */
export function allowed(operation: Operation, state: VmState): boolean {
  return TRANSITIONS[operation].from.includes(state);
}

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
  /** Forward this process's stdin to the guest's serial port (the CLI has its own console, src/cli/console.ts). */
  stdin?: boolean;
  /**
   * Bound on each wait for the workers (pause, resume, shutdown), in ms; overrides the config's `[vmm]
   * lifecycle_timeout_ms` (default 1000, 10 to 60000), and `vm.config` reports it.
   */
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
  /**
   * Each configured device by its name ("disk0", "rng0", "console0"): `kind`, `bad_requests`,
   * `needs_reset` (times the driver broke a ring), `interrupts` (irqfd writes), `bad_accesses`, and what
   * the kind counts (virtio-blk: read_bytes, write_bytes, read_ops, write_ops, flush_ops, discard_ops).
   * Counts restart with the machine on a reboot.
   */
  devices: Record<string, DeviceCounters>;
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

/** A resize the hotplug rules refuse: out of range, or a removal still pending ([hotplug-owner-bits]). */
export class ResizeError extends BunvmmError {
  override readonly name = "ResizeError";
  constructor(message: string) {
    super("refused", message);
  }
}

/** Serial input the guest has not read yet; small like a terminal's line buffer. */
const SERIAL_RX_CAPACITY = 1 << 12;

/** For debug logs: when a start-up stage was reached, in ms since the process started. */
export function sinceStart(): string {
  return `at ${performance.now().toFixed(1)} ms`;
}

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
  /** The vCPUs present now: boot_vcpus at first, then what the last resize asked for. */
  private presentVcpus: number;
  /** Resolves once, when the VM has stopped and released its host resources (or leaked stuck ones). */
  readonly exited: Promise<VmExit>;
  /** Guest serial output (text, stream, waitFor) and input (write). */
  readonly serial: SerialConsole;
  private readonly serialQueues: { tx: ByteQueue; rx: ByteQueue };
  private readonly log: ConsolaInstance;
  private readonly timeoutMs: number;

  private constructor(
    /** The config the user gave; never changed at runtime (vm.info reports the present vCPUs). */
    readonly config: VmConfig,
    options: VmOptions,
    /** A checked snapshot to build the machine from instead of the payload (state Restoring). */
    snapshot?: SnapshotImage,
  ) {
    this.log = options.logger ?? createLogger(options.logLevel);
    this.timeoutMs = config.vmm.lifecycle_timeout_ms;
    this.presentVcpus = snapshot?.state.present_vcpus ?? config.cpus.boot_vcpus;
    if (snapshot) this._state = "Restoring";
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
    this.serialQueues = {
      tx: new ByteQueue(createByteQueueBuffer()),
      rx: new ByteQueue(createByteQueueBuffer(SERIAL_RX_CAPACITY)),
    };
    this.machine = this.build(snapshot && machineRestore(snapshot, this.log));
    try {
      const sink = serialSink(options.serial ?? config.serial);
      this.serial = new SerialConsole(this.serialQueues.tx, this.serialQueues.rx, sink);
    } catch (e) {
      // A sink that cannot be opened (a serial file in a missing directory): free the machine, no
      // worker has started yet.
      closeMachine(this.machine);
      throw e;
    }
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
    const resolved = structuredClone(
      typeof config === "string" ? await loadConfigFile(config) : parseConfig(config ?? DEMO_CONFIG),
    );
    if (options.timeoutMs !== undefined)
      resolved.vmm.lifecycle_timeout_ms = checkLifecycleTimeout(options.timeoutMs, "timeoutMs");
    return new Vm(resolved, options);
  }

  /**
   * Restores a VM from a snapshot directory (or file:// URL) written by `snapshot`: checked first (one
   * line per kind of bad snapshot, nothing changed), then built with guest RAM mapped copy-on-write
   * from the snapshot, so one snapshot can start any number of VMs. The VM is Paused (its workers
   * parked; `resume()` runs the guest from where it stopped), or Running with `resume`.
   * @throws {SnapshotError} {KvmError} {HostError}
   */
  static async restore(source: string, options: VmOptions & { resume?: boolean } = {}): Promise<Vm> {
    const begun = performance.now();
    const image = readSnapshot(source);
    const checked = performance.now();
    // The vCPU workers' modules load on their own threads while this one builds the machine (the
    // builder starts one spare per saved vCPU).
    if (options.timeoutMs !== undefined)
      image.config.vmm.lifecycle_timeout_ms = checkLifecycleTimeout(options.timeoutMs, "timeoutMs");
    let vm: Vm;
    try {
      vm = new Vm(image.config, options, image);
    } catch (e) {
      // A host resource the snapshot's devices need (a disk image another VM holds locked) is refused
      // in the snapshot's words: one line naming the snapshot and the resource.
      if (e instanceof BunvmmError && !(e instanceof SnapshotError))
        throw new SnapshotError(`snapshot ${image.dir}: ${e.message}`, { cause: e });
      throw e;
    }
    const built = performance.now();
    const operation = options.resume ? "restore and resume" : "restore";
    await vm
      .transition(operation, async () => {
        const { cpus, devices } = vm.machine;
        // Without resume the workers start parked (Paused); with it they start running, which saves
        // waking them from the park a second time.
        if (!options.resume) {
          devices.workers.startPaused();
          cpus.startPaused();
        }
        devices.workers.start();
        for (const index of image.vcpus.keys()) cpus.start(index);
        cpus.dropSpares();
        // A vCPU the guest had ejected but the VMM had not reaped yet was not saved: finish its removal.
        for (let cpu = 0; cpu < image.state.created_vcpus; cpu++) {
          if (!image.vcpus.has(cpu) && devices.hotplug.pendingRemoval(cpu)) vm.reaped(cpu);
        }
        // The API state matches the workers once each has acknowledged its start (parked or running).
        await devices.workers.settle(vm.timeoutMs);
        await cpus.settle(vm.timeoutMs);
        const started = performance.now();
        vm.log.info(
          `restored ${image.dir} (${image.vcpus.size} vCPU(s)), ${options.resume ? "running" : "paused"}`,
        );
        vm.log.debug(
          `restore: snapshot checked in ${(checked - begun).toFixed(1)} ms, machine built in ${(built - checked).toFixed(1)} ms, workers started in ${(started - built).toFixed(1)} ms`,
        );
      })
      .catch(async (e: unknown) => {
        await vm.shutdown();
        throw e;
      });
    return vm;
  }

  /**
   * Writes a snapshot of this paused VM to `destination` (a directory that does not exist or is empty;
   * a file:// URL is taken too): each vCPU reads its own state while parked, then the VMM writes the
   * irqchip, clock, devices, config and guest RAM (sparse), and renames the directory into place when
   * complete. The VM is Snapshotting meanwhile and Paused again after, whether it worked or not.
   * @throws {LifecycleError} unless Paused; {SnapshotError}; {VcpuTimeoutError}.
   */
  snapshot(destination: string): Promise<SnapshotStats> {
    return this.serialise(async () => {
      if (!allowed("snapshot", this._state)) throw new LifecycleError("snapshot", this._state);
      this._state = "Snapshotting";
      try {
        return await writeSnapshot(snapshotPath(destination), {
          config: this.config,
          presentVcpus: this.presentVcpus,
          machine: this.machine,
          timeoutMs: this.timeoutMs,
          log: this.log,
        });
      } finally {
        if (this._state === "Snapshotting") this._state = "Paused";
      }
    });
  }

  /** Builds a machine whose events count only while it is the current one (a reboot replaces it). */
  private build(restore?: MachineRestore): Machine {
    let built: Machine | undefined;
    const current = () => built !== undefined && built === this.machine;
    built = buildMachine(
      this.configInForce(),
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
        onDeviceCrash: (device, summary) => {
          if (current()) this.deviceCrashed(device, summary);
        },
      },
      this.serialQueues,
      (stage) => this.log.debug(`${stage} (${sinceStart()})`),
      restore,
    );
    return built;
  }

  /** The vCPUs present now: `boot_vcpus` at first, then what the last accepted resize asked for. */
  get vcpuCount(): number {
    return this.presentVcpus;
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

  /** Runs `op` after every operation queued before it ([serialised-lifecycle]). */
  private serialise<T>(op: () => Promise<T>): Promise<T> {
    const next = this.ops.then(op);
    this.ops = next.catch(() => undefined);
    return next;
  }

  /**
   * Queues `operation`: when its turn comes, refuses it unless the table allows it in the current state,
   * runs `body`, and on success moves to the table's target state.
   */
  private transition(operation: Operation, body: () => Promise<void>): Promise<void> {
    return this.serialise(async () => {
      if (!allowed(operation, this._state)) throw new LifecycleError(operation, this._state);
      await body();
      const to = TRANSITIONS[operation].to;
      if (to) this._state = to;
    });
  }

  /** The config as the machine is built from it: the user's, with the vCPUs present now. */
  private configInForce(): VmConfig {
    return { ...this.config, cpus: { ...this.config.cpus, boot_vcpus: this.presentVcpus } };
  }

  /** Device workers first, so a vCPU's first notification finds its back-end running. */
  private startWorkers(): void {
    this.machine.devices.workers.start();
    for (let i = 0; i < this.presentVcpus; i++) this.machine.cpus.start(i);
  }

  /** Starts the device workers and every boot vCPU's worker. Created -> Running. */
  boot(): Promise<void> {
    return this.transition("boot", async () => {
      this.startWorkers();
      this.log.info(`booting ${this.machine.payloadSource} on ${this.presentVcpus} vCPU(s)`);
    });
  }

  /**
   * Parks every vCPU, then every device worker ([vcpus-before-devices]: parked vCPUs send no new
   * notification). Running -> Paused; on timeout rolls back, stays Running and throws ([all-or-nothing]).
   */
  pause(): Promise<void> {
    return this.transition("pause", async () => {
      const { cpus, devices } = this.machine;
      await cpus.pause(this.timeoutMs);
      try {
        await devices.workers.pause(this.timeoutMs);
      } catch (e) {
        // All or nothing: the vCPUs go back too. The device's error is the one to report.
        await cpus
          .resume(this.timeoutMs)
          .catch((r: Error) => this.log.warn(`rolling back the vCPUs: ${r.message}`));
        throw e;
      }
    });
  }

  /** Wakes the device workers, then the vCPUs ([vcpus-before-devices], reversed). Paused -> Running. */
  resume(): Promise<void> {
    return this.transition("resume", async () => {
      await this.machine.devices.workers.resume(this.timeoutMs);
      await this.machine.cpus.resume(this.timeoutMs);
    });
  }

  /**
   * Hot-plugs or hot-unplugs vCPUs until `desiredVcpus` are present (cloud-hypervisor's vm.resize).
   * Adding starts workers at once (parked if the VM is paused) and marks them inserting; removing
   * marks CPUs removing and pending-removal: the guest ejects them when it has taken them offline.
   * Either way the guest hears of it through the GED. Refused while a removal is pending, below 1 or
   * above max_vcpus ([hotplug-owner-bits]).
   */
  resize(desiredVcpus: number): Promise<void> {
    return this.transition("resize", async () => {
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
      const present = this.presentVcpus;
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
      this.presentVcpus = desiredVcpus;
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
      if (!allowed("reboot", this._state)) throw new LifecycleError("reboot", this._state);
      await this.restart();
    });
  }

  /** Kills every worker, vCPUs first ([vcpus-before-devices]); the names of those that did not exit. */
  private async killWorkers(): Promise<string[]> {
    const vcpus = await this.machine.cpus.kill(this.timeoutMs);
    const devices = await this.machine.devices.workers.kill(this.timeoutMs);
    return [...vcpus.map((i) => `vCPU ${i}`), ...devices];
  }

  /** The reboot itself: a fresh machine, Running; or Shutdown when a worker would not stop. */
  private async restart(): Promise<void> {
    const stuck = await this.killWorkers();
    if (stuck.length > 0) {
      await this.stop({ reason: "crash", detail: `reboot failed: ${stuck.join(", ")} did not stop` });
      return;
    }
    closeMachine(this.machine);
    this.machine = this.build();
    this.startWorkers();
    this._state = TRANSITIONS.reboot.to!;
    this._reboots++;
    this.log.info(`rebooted (${this._reboots})`);
  }

  /** Presses the ACPI power button (GED event): a guest with ACPI shuts itself down. */
  powerButton(): Promise<void> {
    return this.transition("press the power button", async () => {
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
      config: structuredClone(this.configInForce()),
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
      devices: this.machine.devices.counters(),
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
        if (allowed("reboot", this._state)) await this.restart();
      });
    }
  }

  private guestCrashed(report: CrashReport): void {
    void this.serialise(() => this.stop({ reason: "crash", detail: report.summary, crash: report }));
  }

  /** A device back-end's loop ended on its own: the device is gone, so the VM stops. */
  private deviceCrashed(device: string, summary: string): void {
    this.log.error(`${device}: ${summary}`);
    void this.serialise(() => this.stop({ reason: "crash", detail: summary }));
  }

  private async stop(exit: VmExit): Promise<VmExit> {
    if (this._state === "Shutdown") return this.exited;
    this._state = "Shutdown";
    const stuck = await this.killWorkers();
    await this.serial.close();
    if (this.stdinListener) {
      process.stdin.off("data", this.stdinListener);
      process.stdin.pause();
    }
    if (stuck.length === 0) closeMachine(this.machine);
    else
      this.log.warn(
        `${stuck.join(", ")} did not exit within ${this.timeoutMs} ms; leaving their memory mapped`,
      );
    this.resolveExit(exit);
    return exit;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}
