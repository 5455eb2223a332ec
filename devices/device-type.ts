/**
 * What one kind of device is, in one place: the resources it claims, the register front-end every vCPU
 * worker builds over its shared state, an optional back-end that runs in a device worker, the AML it
 * adds to the DSDT, and a versioned save/restore of its state. `devices/registry.ts` lists the machine's
 * device types; nothing else in the VMM names a device kind.
 *
 * A device kind (`DeviceKind`) is everything that works from a spec alone; a device type adds `create`.
 * Platform devices are one type each; a configured device (a virtio disk) gets a type made for its config
 * entry, sharing its kind's methods, so a vCPU worker finds the kind by name without the config.
 *
 * Threads: `create`, `connect`, `aml`, `backend`, `save` and `restore` run on the VMM thread; `attach`
 * runs in every vCPU worker, on a structured clone of the spec `create` returned (so a spec holds only
 * plain data and SharedArrayBuffers: the state all workers share).
 */
import type { Aml } from "../src/arch/x86_64/acpi/aml.ts";
import type { VmFd } from "../src/kvm/vm-fd.ts";
import type { GuestMemory } from "../src/memory/guest-memory.ts";
import type { Bus } from "./bus.ts";
import type { ByteQueue } from "./byte-queue.ts";
import type { EjectTarget } from "./cpu-hotplug-controller.ts";
import type { DeviceState } from "./device-state.ts";
import type { IrqLine } from "./irq-line.ts";
import type { ResourceAllocator } from "./resource-allocator.ts";
import type { VmRequestSink } from "./vm-request.ts";

/** What every spec carries: the type that built it (the registry key) and the device's name in messages. */
export interface DeviceSpecBase {
  readonly kind: string;
  readonly name: string;
}

/** What the VMM thread lends a device type while it creates the machine's devices. */
export interface PlatformEnv {
  readonly maxVcpus: number;
  /** The console queues, owned by the Vm so output survives reboots. */
  readonly serial: { readonly tx: ByteQueue; readonly rx: ByteQueue };
}

/** What a vCPU worker lends the front-ends it attaches. */
export interface DeviceContext {
  /** Guest RAM, for front-ends that check guest addresses (virtqueue set-up). */
  readonly memory: Pick<GuestMemory, "contains">;
  irqLine(gsi: number): IrqLine;
  request: VmRequestSink;
  /** Kills an ejected CPU and asks the VMM to reap it; returns at once. */
  eject: EjectTarget;
}

/** One worker's view of the machine's buses. */
export interface Buses {
  pio: Bus;
  mmio: Bus;
}

/**
 * A back-end that runs in a device worker: the worker entry (a name from src/vmm/worker-entries.ts, so
 * the build compiles it in) and the structured-clonable data its loop starts from (eventfds, state).
 */
export interface DeviceBackend {
  readonly entry: string;
  readonly init: unknown;
}

/** AML for the DSDT: objects placed in `\_SB` (in registry order), and objects at the root (`\_S5`). */
export interface AmlContribution {
  readonly systemBus?: readonly Aml[];
  readonly root?: readonly Aml[];
}

/** What the AML builders may know about the machine. */
export interface AmlEnv {
  readonly maxVcpus: number;
}

/** What the VMM thread lends a device when a machine is built (not for the acpi-tables command). */
export interface HostEnv {
  readonly vm: VmFd;
  readonly memory: GuestMemory;
  /**
   * The machine is rebuilt from a snapshot (src/snapshot/restore.ts): its devices' saved state is
   * restored after `connect`, over what `connect` wrote. A device opens what continues rather than
   * starts afresh (an output file is appended to, not truncated), and passes the flag on to its
   * back-end (VirtioBackendInit.restored), which owes a restored driver whatever the device's spec
   * asks for after a migration (vsock: a TRANSPORT_RESET event).
   */
  readonly restoring: boolean;
}

/** A device's host side while its machine lives: its back-end, its counters, what to release. */
export interface DeviceConnection {
  /** The back-end to run in a device worker (instead of the kind's `backend`). */
  readonly backend?: DeviceBackend;
  /** Counters for vm.counters().devices (the device's name is the key), read on the VMM thread. */
  counters?(): Record<string, number | string>;
  /** Releases the host resources; called only once no worker can use them any more. */
  close(): void;
}

/** What works from a spec alone: every method but `create`. */
export interface DeviceKind<S extends DeviceSpecBase = DeviceSpecBase> {
  readonly kind: S["kind"];
  /** Every vCPU worker: inserts the register front-end(s) on the buses, over the spec's shared state. */
  attach(spec: S, ctx: DeviceContext, buses: Buses): void;
  /** The DSDT objects that describe the device to the guest; none when the guest finds it otherwise. */
  aml?(spec: S, env: AmlEnv): AmlContribution;
  /** The back-end to run in a device worker, if the device has one and needs no host resources. */
  backend?(spec: S): DeviceBackend;
  /**
   * VMM thread, while a machine is built: opens the device's host resources (files, eventfds registered
   * with KVM). Throws a BunvmmError naming the config key when one cannot be had; nothing is left open.
   */
  connect?(spec: S, host: HostEnv): DeviceConnection;
  /** The device's state as bytes, with the version of their layout. Only while no worker runs it. */
  save(spec: S): DeviceState;
  /** Puts saved state back; throws a BunvmmError naming the device on a version or size mismatch. */
  restore(spec: S, state: DeviceState): void;
}

export interface DeviceType<S extends DeviceSpecBase = DeviceSpecBase> extends DeviceKind<S> {
  /**
   * VMM thread: claims resources (fixed ones named in src/arch/x86_64/layout.ts, or allocated), allocates
   * the shared state, and returns the spec workers attach from. Touches no host resource.
   */
  create(resources: ResourceAllocator, env: PlatformEnv): S;
}

/** Names a type with its spec, so the registry keeps each type's spec shape. */
export function defineDeviceType<S extends DeviceSpecBase>(type: DeviceType<S>): DeviceType<S> {
  return type;
}
