/**
 * The machine's devices (src/vmm/platform.ts) and the VMM thread's handles on the ones it drives: the
 * CPU hotplug bookkeeping, the GED, and the device workers that run the back-ends device types declare. Workers build the buses from `specs` (devices/registry.ts). The
 * serial queues belong to the Vm, so console output survives reboots.
 *
 * Threads: VMM thread only.
 */
import { GedState } from "../../devices/acpi-ged.ts";
import type { ByteQueue } from "../../devices/byte-queue.ts";
import { CpuHotplugState } from "../../devices/cpu-hotplug-controller.ts";
import { KvmIrqLine } from "../../devices/irq-line.ts";
import { type DeviceSpec, deviceTypeOf } from "../../devices/registry.ts";
import type { VmFd } from "../kvm/vm-fd.ts";
import { DeviceWorkers } from "./device-workers.ts";
import { createPlatformDevices, specOf } from "./platform.ts";

export class DeviceManager {
  readonly specs: DeviceSpec[];
  /** VMM-side view of the hotplug registers' state ([hotplug-owner-bits]: VMM-owned and guest-visible bits). */
  readonly hotplug: CpuHotplugState;
  /** Raises GED events (CPU hotplug, power button) towards the guest. */
  readonly ged: GedState;
  /** One worker per device back-end; started before the vCPUs, parked after them. */
  readonly workers: DeviceWorkers;

  constructor(
    vm: VmFd,
    maxVcpus: number,
    serial: { tx: ByteQueue; rx: ByteQueue },
    onDeviceCrash: (device: string, summary: string) => void,
  ) {
    this.specs = createPlatformDevices({ maxVcpus, serial });
    const backends = this.specs.flatMap((spec) => {
      const backend = deviceTypeOf(spec.kind).backend?.(spec);
      return backend ? [{ device: spec.name, backend }] : [];
    });
    this.workers = new DeviceWorkers(backends, onDeviceCrash);
    this.hotplug = new CpuHotplugState(specOf(this.specs, "cpu-hotplug").state);
    const ged = specOf(this.specs, "acpi-ged");
    this.ged = new GedState(ged.state, new KvmIrqLine(vm, ged.gsi));
  }

  /** Releases the device workers' eventfds; only once their workers are gone. */
  close(): void {
    this.workers.close();
  }
}
