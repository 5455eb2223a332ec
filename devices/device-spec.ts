/**
 * Devices as plain, structured-clonable data, so every vCPU worker can build its own bus over the
 * same shared register state. The VMM thread describes (src/vmm/device-manager.ts); each worker
 * attaches (src/vcpu/worker.ts). To add a device: a spec variant here, a case in `attachDevices`.
 */

import { AcpiGed, GED_SIZE } from "./acpi-ged.ts";
import { ACPI_POWER_SIZE, AcpiPower } from "./acpi-power.ts";
import { Bus } from "./bus.ts";
import { ByteQueue } from "./byte-queue.ts";
import { CPU_HOTPLUG_SIZE, CpuHotplugController, type EjectTarget } from "./cpu-hotplug-controller.ts";
import { I8042, I8042_COMMAND, I8042_COMMAND_PORT, I8042_DATA, I8042_DATA_PORT } from "./i8042.ts";
import type { IrqLine } from "./irq-line.ts";
import { SERIAL_8250_SIZE, Serial8250 } from "./serial-8250.ts";
import type { VmRequestSink } from "./vm-request.ts";

export type DeviceSpec =
  | {
      kind: "serial-8250";
      name: string;
      port: number;
      gsi: number;
      state: SharedArrayBuffer;
      /** Transmitted bytes, drained by the VMM thread. */
      tx: SharedArrayBuffer;
      /** Received bytes, filled by the VMM thread. */
      rx: SharedArrayBuffer;
    }
  | { kind: "i8042"; name: string; state: SharedArrayBuffer }
  | { kind: "acpi-power"; name: string; port: number }
  | { kind: "cpu-hotplug"; name: string; base: number; state: SharedArrayBuffer }
  | { kind: "acpi-ged"; name: string; base: number; state: SharedArrayBuffer };

/** What a worker lends its devices. */
export interface DeviceContext {
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

/** Builds both buses from the specs, with devices bound to this worker's context. */
export function attachDevices(specs: readonly DeviceSpec[], ctx: DeviceContext): Buses {
  const pio = new Bus("pio");
  const mmio = new Bus("mmio");
  for (const spec of specs) {
    switch (spec.kind) {
      case "serial-8250": {
        const tx = new ByteQueue(spec.tx);
        const dev = new Serial8250(
          spec.state,
          ctx.irqLine(spec.gsi),
          (b) => tx.push(b),
          new ByteQueue(spec.rx),
        );
        pio.insert(spec.port, SERIAL_8250_SIZE, dev, spec.name);
        break;
      }
      case "i8042": {
        const dev = new I8042(spec.state, ctx.request);
        pio.insert(I8042_DATA_PORT, 1, dev, spec.name, I8042_DATA);
        pio.insert(I8042_COMMAND_PORT, 1, dev, spec.name, I8042_COMMAND);
        break;
      }
      case "acpi-power":
        pio.insert(spec.port, ACPI_POWER_SIZE, new AcpiPower(ctx.request), spec.name);
        break;
      case "cpu-hotplug":
        mmio.insert(spec.base, CPU_HOTPLUG_SIZE, new CpuHotplugController(spec.state, ctx.eject), spec.name);
        break;
      case "acpi-ged":
        mmio.insert(spec.base, GED_SIZE, new AcpiGed(spec.state), spec.name);
        break;
    }
  }
  return { pio, mmio };
}
