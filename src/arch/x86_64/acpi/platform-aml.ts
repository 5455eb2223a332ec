/**
 * The DSDT's fixed platform objects: COM1 (so the OS finds the UART by _HID, not by probing), the power
 * button the GED notifies, and `\_S5`, the sleep type the OS writes to the sleep control register to
 * power off (devices/acpi-power.ts).
 * @module
 */
import { ACPI_S5_SLP_TYP } from "../../../../devices/acpi-power.ts";
import { COM1_GSI, COM1_PORT } from "../layout.ts";
import { type Aml, device, eisaId, name, packageOf } from "./aml.ts";
import { COM1_NAME, POWER_BUTTON_NAME } from "./dsdt-paths.ts";
import { interrupt, io, resourceTemplate } from "./resource-template.ts";

/** 16550A-compatible UART. */
const UART_HID = "PNP0501";
/** A 16550's eight registers; the range is fixed, so byte alignment. */
const UART_PORTS = 8;
const UART_PORT_ALIGNMENT = 1;
/** Control-method power button (ACPI 6.5 §4.8.3.1.2). */
const POWER_BUTTON_HID = "PNP0C0C";

/** `COM1`, to be placed in `\_SB`: ports COM1_PORT..+7 and interrupt COM1_GSI (ISA: edge, active high). */
export function com1Aml(): Aml {
  return device(COM1_NAME, [
    name("_HID", eisaId(UART_HID)),
    name("_UID", 0),
    name(
      "_CRS",
      resourceTemplate([
        io(COM1_PORT, COM1_PORT, UART_PORT_ALIGNMENT, UART_PORTS),
        interrupt(
          { usage: "ResourceConsumer", trigger: "Edge", polarity: "ActiveHigh", sharing: "Exclusive" },
          [COM1_GSI],
        ),
      ]),
    ),
  ]);
}

/** `PWRB`, to be placed in `\_SB`: the GED notifies it on GedEvent.PowerButton. */
export function powerButtonAml(): Aml {
  return device(POWER_BUTTON_NAME, [name("_HID", eisaId(POWER_BUTTON_HID)), name("_UID", 0)]);
}

/**
 * `\_S5`: one element, SLP_TYPa (ACPICA reads SLP_TYPb from bits 8-15 of a lone element: 0; a hardware-reduced
 * machine has no PM1b anyway). The OS writes SLP_TYPa << 2 | SLP_EN to the sleep control register.
 */
export function s5Aml(): Aml {
  return name("\\_S5", packageOf([ACPI_S5_SLP_TYP]));
}
