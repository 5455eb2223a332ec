/**
 * The 16550A UART's device type: its fixed ports and GSI, its DSDT device, save/restore. The registers
 * themselves (what vCPU workers run) are serial-8250.ts.
 *
 * Threads: VMM thread.
 */
import { type Aml, device, eisaId, name } from "../src/arch/x86_64/acpi/aml.ts";
import { interrupt, io, resourceTemplate } from "../src/arch/x86_64/acpi/resource-template.ts";
import { restoreBuffers, saveBuffers } from "./device-state.ts";
import { defineDeviceType } from "./device-type.ts";
import {
  attachSerial8250,
  createSerial8250State,
  SERIAL_8250_SIZE,
  type Serial8250Spec,
} from "./serial-8250.ts";

/** Layout of saved state: the register words, then the receive queue with its unread input. */
const SERIAL_8250_STATE_VERSION = 1;
/** 16550A-compatible UART. */
const UART_HID = "PNP0501";
/** The port range is fixed, so byte alignment. */
const UART_PORT_ALIGNMENT = 1;

/** The DSDT device `aml_name` (found by its _HID, not by probing): the ports and the ISA interrupt (edge, active high). */
export function serial8250Aml(amlName: string, port: number, gsi: number): Aml {
  return device(amlName, [
    name("_HID", eisaId(UART_HID)),
    name("_UID", 0),
    name(
      "_CRS",
      resourceTemplate([
        io(port, port, UART_PORT_ALIGNMENT, SERIAL_8250_SIZE),
        interrupt(
          { usage: "ResourceConsumer", trigger: "Edge", polarity: "ActiveHigh", sharing: "Exclusive" },
          [gsi],
        ),
      ]),
    ),
  ]);
}

/** A 16550A at fixed `port` and `gsi`, wired to the console queues; `name` is also its DSDT name. */
export function serial8250Type(name: string, port: number, gsi: number) {
  return defineDeviceType<Serial8250Spec>({
    kind: "serial-8250",
    create: (resources, env) => {
      resources.fixedPio(name, port, SERIAL_8250_SIZE);
      resources.fixedGsi(name, gsi);
      return {
        kind: "serial-8250",
        name,
        port,
        gsi,
        state: createSerial8250State(),
        tx: env.serial.tx.buffer,
        rx: env.serial.rx.buffer,
      };
    },
    attach: attachSerial8250,
    aml: (spec) => ({ systemBus: [serial8250Aml(spec.name, spec.port, spec.gsi)] }),
    save: (spec) => saveBuffers(SERIAL_8250_STATE_VERSION, [spec.state, spec.rx]),
    restore: (spec, state) =>
      restoreBuffers(spec.name, SERIAL_8250_STATE_VERSION, state, [spec.state, spec.rx]),
  });
}
