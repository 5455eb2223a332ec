/**
 * Describes the machine's devices (device specs with their shared state) and keeps the VMM thread's
 * handles on them: the CPU hotplug bookkeeping and the GED. Workers build the buses from `specs`
 * (devices/device-spec.ts). The serial queues belong to the Vm, so console output survives reboots.
 */

import { createGedState, GedState } from "../../devices/acpi-ged.ts";
import { ACPI_POWER_PORT } from "../../devices/acpi-power.ts";
import type { ByteQueue } from "../../devices/byte-queue.ts";
import { CpuHotplugState, createCpuHotplugState } from "../../devices/cpu-hotplug-controller.ts";
import type { DeviceSpec } from "../../devices/device-spec.ts";
import { createI8042State } from "../../devices/i8042.ts";
import { KvmIrqLine } from "../../devices/irq-line.ts";
import { createSerial8250State } from "../../devices/serial-8250.ts";
import { COM1_GSI, COM1_PORT, CPU_HOTPLUG_BASE, GED_BASE, GED_GSI } from "../arch/x86_64/layout.ts";
import type { VmFd } from "../kvm/vm-fd.ts";

/** The platform: COM1, i8042, ACPI power registers, CPU hotplug controller, GED. */
export class DeviceManager {
  readonly specs: DeviceSpec[];
  /** VMM-side view of the hotplug registers' state (inv 10: VMM-owned and guest-visible bits). */
  readonly hotplug: CpuHotplugState;
  /** Raises GED events (CPU hotplug, power button) towards the guest. */
  readonly ged: GedState;

  constructor(vm: VmFd, maxVcpus: number, serial: { tx: ByteQueue; rx: ByteQueue }) {
    const hotplugState = createCpuHotplugState(maxVcpus);
    const gedState = createGedState();
    this.hotplug = new CpuHotplugState(hotplugState);
    this.ged = new GedState(gedState, new KvmIrqLine(vm, GED_GSI));
    this.specs = [
      {
        kind: "serial-8250",
        name: "COM1",
        port: COM1_PORT,
        gsi: COM1_GSI,
        state: createSerial8250State(),
        tx: serial.tx.buffer,
        rx: serial.rx.buffer,
      },
      { kind: "i8042", name: "i8042", state: createI8042State() },
      { kind: "acpi-power", name: "acpi-power", port: ACPI_POWER_PORT },
      { kind: "cpu-hotplug", name: "cpu-hotplug", base: CPU_HOTPLUG_BASE, state: hotplugState },
      { kind: "acpi-ged", name: "ged", base: GED_BASE, state: gedState },
    ];
  }
}
