/**
 * The machine's devices (src/vmm/platform.ts) and the VMM thread's handles on the ones it drives: the
 * CPU hotplug bookkeeping and the GED. Workers build the buses from `specs` (devices/registry.ts). The
 * serial queues belong to the Vm, so console output survives reboots.
 *
 * Threads: VMM thread only.
 */
import { GedState } from "../../devices/acpi-ged.ts";
import type { ByteQueue } from "../../devices/byte-queue.ts";
import { CpuHotplugState } from "../../devices/cpu-hotplug-controller.ts";
import { KvmIrqLine } from "../../devices/irq-line.ts";
import type { DeviceSpec } from "../../devices/registry.ts";
import type { VmFd } from "../kvm/vm-fd.ts";
import { createPlatformDevices, specOf } from "./platform.ts";

export class DeviceManager {
  readonly specs: DeviceSpec[];
  /** VMM-side view of the hotplug registers' state ([hotplug-owner-bits]: VMM-owned and guest-visible bits). */
  readonly hotplug: CpuHotplugState;
  /** Raises GED events (CPU hotplug, power button) towards the guest. */
  readonly ged: GedState;

  constructor(vm: VmFd, maxVcpus: number, serial: { tx: ByteQueue; rx: ByteQueue }) {
    this.specs = createPlatformDevices({ maxVcpus, serial });
    this.hotplug = new CpuHotplugState(specOf(this.specs, "cpu-hotplug").state);
    const ged = specOf(this.specs, "acpi-ged");
    this.ged = new GedState(ged.state, new KvmIrqLine(vm, ged.gsi));
  }
}
