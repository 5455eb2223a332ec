/**
 * The machine's devices (src/vmm/platform.ts) and the VMM thread's handles on the ones it drives: the
 * CPU hotplug bookkeeping, the GED, the host side of each configured device (open disk images,
 * eventfds registered with KVM: DeviceType.connect) and the device workers that run the back-ends.
 * Workers build the buses from `specs` (devices/registry.ts). The serial queues belong to the Vm, so
 * console output survives reboots.
 *
 * Threads: VMM thread only.
 */
import { GedState } from "../../devices/acpi-ged.ts";
import type { ByteQueue } from "../../devices/byte-queue.ts";
import { CpuHotplugState } from "../../devices/cpu-hotplug-controller.ts";
import type { DeviceConnection } from "../../devices/device-type.ts";
import { KvmIrqLine } from "../../devices/irq-line.ts";
import { type DeviceConfig, type DeviceSpec, deviceTypeOf } from "../../devices/registry.ts";
import type { VmFd } from "../kvm/vm-fd.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import { type DeviceWorkerSpec, DeviceWorkers } from "./device-workers.ts";
import { createPlatformDevices, specOf } from "./platform.ts";

/** One device's counters in vm.counters().devices: its kind first, then what the kind counts. */
export type DeviceCounters = { kind: string } & Record<string, number | string>;

export class DeviceManager {
  readonly specs: DeviceSpec[];
  /** VMM-side view of the hotplug registers' state ([hotplug-owner-bits]: VMM-owned and guest-visible bits). */
  readonly hotplug: CpuHotplugState;
  /** Raises GED events (CPU hotplug, power button) towards the guest. */
  readonly ged: GedState;
  /** One worker per device back-end; started before the vCPUs, parked after them. */
  readonly workers: DeviceWorkers;
  /** The host side of each connected device, by device name. */
  private readonly connections = new Map<string, DeviceConnection>();
  private closed = false;

  /** Opens every configured device's host resources; on a failure releases what was opened and throws. */
  constructor(
    vm: VmFd,
    memory: GuestMemory,
    maxVcpus: number,
    config: DeviceConfig,
    serial: { tx: ByteQueue; rx: ByteQueue },
    onDeviceCrash: (device: string, summary: string) => void,
    /** Rebuilding a machine from a snapshot (HostEnv.restoring). */
    restoring = false,
  ) {
    this.specs = createPlatformDevices({ maxVcpus, serial }, config);
    const backends: DeviceWorkerSpec[] = [];
    try {
      for (const spec of this.specs) {
        const type = deviceTypeOf(spec.kind);
        const connection = type.connect?.(spec, { vm, memory, restoring });
        if (connection) this.connections.set(spec.name, connection);
        const backend = connection?.backend ?? type.backend?.(spec);
        if (backend) backends.push({ device: spec.name, backend });
      }
    } catch (e) {
      this.closeConnections();
      throw e;
    }
    this.workers = new DeviceWorkers(backends, onDeviceCrash);
    this.hotplug = new CpuHotplugState(specOf(this.specs, "cpu-hotplug").state);
    const ged = specOf(this.specs, "acpi-ged");
    this.ged = new GedState(ged.state, new KvmIrqLine(vm, ged.gsi));
  }

  /** Counters of every device that keeps some, by device name. */
  counters(): Record<string, DeviceCounters> {
    const out: Record<string, DeviceCounters> = {};
    for (const [name, c] of this.connections) {
      const counters = c.counters?.();
      if (counters) out[name] = { kind: String(counters.kind), ...counters };
    }
    return out;
  }

  /** Closes each connection once; their counters stay readable (they are shared words). */
  private closeConnections(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.connections.values()].reverse()) c.close();
  }

  /** Releases the device workers' eventfds and the devices' host resources; only once their workers are gone. */
  close(): void {
    this.workers.close();
    this.closeConnections();
  }
}
