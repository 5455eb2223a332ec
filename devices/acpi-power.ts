/**
 * Hardware-reduced ACPI power registers (ACPI 6.5 §4.8.3.7 sleep control/status, §4.8.3.6 reset):
 * how a guest powers off or resets a machine that has no PM1 blocks. The FADT points at these ports.
 *
 *   offset 0  SLEEP_CONTROL  write SLP_EN | SLP_TYP << 2; SLP_TYP 5 (S5) powers off
 *   offset 1  RESET          write RESET_VALUE to reset
 *   offset 2  SLEEP_STATUS   reads 0 (never woken from a sleep state)
 *
 * Threads: any vCPU worker. A write posts a request to the VMM and returns ([no-vcpu-waits-vcpu], cloud-hypervisor
 * #7798); the vCPU keeps running the guest until the VMM stops it.
 *
 * This module is the front-end only, what every vCPU worker loads; the device type (ports, the power
 * button and `\_S5` in the DSDT, save/restore) is acpi-power-type.ts.
 */
import type { FadtPowerRegisters } from "../src/arch/x86_64/acpi/fadt.ts";
import type { AccessSize, BusDevice } from "./bus.ts";
import type { Buses, DeviceContext, DeviceSpecBase } from "./device-type.ts";
import type { VmRequestSink } from "./vm-request.ts";

export const ACPI_POWER_SIZE = 3;
export const ACPI_SLEEP_CONTROL = 0;
export const ACPI_RESET = 1;
export const ACPI_SLEEP_STATUS = 2;
export const ACPI_SLP_EN = 0x20;
export const ACPI_SLP_TYP_SHIFT = 2;
export const ACPI_SLP_TYP_MASK = 0x7;
/** The S5 (soft off) sleep type value our DSDT's \_S5 package names. */
export const ACPI_S5_SLP_TYP = 5;
export const ACPI_S5_SLEEP_VALUE = ACPI_SLP_EN | (ACPI_S5_SLP_TYP << ACPI_SLP_TYP_SHIFT);
export const ACPI_RESET_VALUE = 0x01;

/** Sleep control, reset and sleep status registers. */
export class AcpiPower implements BusDevice {
  private ignored = 0;

  constructor(private readonly request: VmRequestSink) {}

  get ignoredAccesses(): number {
    return this.ignored;
  }

  read(_offset: number, size: AccessSize): number {
    if (size !== 1) this.ignored++;
    return 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 1) {
      this.ignored++;
      return;
    }
    if (offset === ACPI_SLEEP_CONTROL && value & ACPI_SLP_EN) {
      const type = (value >> ACPI_SLP_TYP_SHIFT) & ACPI_SLP_TYP_MASK;
      if (type === ACPI_S5_SLP_TYP) this.request("poweroff", "ACPI sleep control S5");
    } else if (offset === ACPI_RESET && value === ACPI_RESET_VALUE) {
      this.request("reset", "ACPI reset register");
    }
  }
}

export interface AcpiPowerSpec extends DeviceSpecBase {
  readonly kind: "acpi-power";
  readonly port: number;
}

/** Where the FADT must point for these registers. */
export function acpiPowerFadtRegisters(spec: AcpiPowerSpec): FadtPowerRegisters {
  return {
    sleepControlPort: spec.port + ACPI_SLEEP_CONTROL,
    sleepStatusPort: spec.port + ACPI_SLEEP_STATUS,
    resetPort: spec.port + ACPI_RESET,
    resetValue: ACPI_RESET_VALUE,
  };
}

/** Every vCPU worker: the sleep and reset registers on the PIO bus. */
export function attachAcpiPower(spec: AcpiPowerSpec, ctx: DeviceContext, buses: Buses): void {
  buses.pio.insert(spec.port, ACPI_POWER_SIZE, new AcpiPower(ctx.request), spec.name);
}
