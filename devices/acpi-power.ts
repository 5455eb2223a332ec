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
 */
import { type Aml, device, eisaId, name, packageOf } from "../src/arch/x86_64/acpi/aml.ts";
import type { FadtPowerRegisters } from "../src/arch/x86_64/acpi/fadt.ts";
import { ACPI_POWER_PORT } from "../src/arch/x86_64/layout.ts";
import type { AccessSize, BusDevice } from "./bus.ts";
import { restoreBuffers, saveBuffers } from "./device-state.ts";
import { type DeviceSpecBase, defineDeviceType } from "./device-type.ts";
import { POWER_BUTTON_NAME } from "./dsdt-paths.ts";
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

/** Layout of saved state: none (the registers hold nothing between accesses). */
const ACPI_POWER_STATE_VERSION = 1;
const ACPI_POWER_NAME = "acpi-power";
/** Control-method power button (ACPI 6.5, section 4.8.3.1.2). */
const POWER_BUTTON_HID = "PNP0C0C";

/** `PWRB`, to be placed in `\_SB`: the GED notifies it on GedEvent.PowerButton. */
export function powerButtonAml(): Aml {
  return device(POWER_BUTTON_NAME, [name("_HID", eisaId(POWER_BUTTON_HID)), name("_UID", 0)]);
}

/**
 * `\_S5`: one element, SLP_TYPa (ACPICA reads SLP_TYPb from bits 8-15 of a lone element: 0; a
 * hardware-reduced machine has no PM1b anyway). The OS writes SLP_TYPa << 2 | SLP_EN to the sleep
 * control register to power off.
 */
export function s5Aml(): Aml {
  return name("\\_S5", packageOf([ACPI_S5_SLP_TYP]));
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

/** The sleep/reset registers at their fixed ports, the power button device and `\_S5`. */
export const acpiPowerType = defineDeviceType<AcpiPowerSpec>({
  kind: "acpi-power",
  create: (resources) => {
    resources.fixedPio(ACPI_POWER_NAME, ACPI_POWER_PORT, ACPI_POWER_SIZE);
    return { kind: "acpi-power", name: ACPI_POWER_NAME, port: ACPI_POWER_PORT };
  },
  attach: (spec, ctx, buses) =>
    buses.pio.insert(spec.port, ACPI_POWER_SIZE, new AcpiPower(ctx.request), spec.name),
  aml: () => ({ systemBus: [powerButtonAml()], root: [s5Aml()] }),
  save: () => saveBuffers(ACPI_POWER_STATE_VERSION, []),
  restore: (spec, state) => restoreBuffers(spec.name, ACPI_POWER_STATE_VERSION, state, []),
});
