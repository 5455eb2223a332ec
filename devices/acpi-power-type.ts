/**
 * The ACPI power registers' device type: their fixed ports, the power button device and `\_S5` in the
 * DSDT, save/restore. The registers themselves (what vCPU workers run) are acpi-power.ts.
 *
 * Threads: VMM thread.
 */
import { type Aml, device, eisaId, name, packageOf } from "../src/arch/x86_64/acpi/aml.ts";
import { ACPI_POWER_PORT } from "../src/arch/x86_64/layout.ts";
import { ACPI_POWER_SIZE, ACPI_S5_SLP_TYP, type AcpiPowerSpec, attachAcpiPower } from "./acpi-power.ts";
import { restoreBuffers, saveBuffers } from "./device-state.ts";
import { defineDeviceType } from "./device-type.ts";
import { POWER_BUTTON_NAME } from "./dsdt-paths.ts";

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

/** The sleep/reset registers at their fixed ports, the power button device and `\_S5`. */
export const acpiPowerType = defineDeviceType<AcpiPowerSpec>({
  kind: "acpi-power",
  create: (resources) => {
    resources.fixedPio(ACPI_POWER_NAME, ACPI_POWER_PORT, ACPI_POWER_SIZE);
    return { kind: "acpi-power", name: ACPI_POWER_NAME, port: ACPI_POWER_PORT };
  },
  attach: attachAcpiPower,
  aml: () => ({ systemBus: [powerButtonAml()], root: [s5Aml()] }),
  save: () => saveBuffers(ACPI_POWER_STATE_VERSION, []),
  restore: (spec, state) => restoreBuffers(spec.name, ACPI_POWER_STATE_VERSION, state, []),
});
