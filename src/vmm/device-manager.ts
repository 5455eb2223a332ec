/**
 * Describes the machine's devices (device specs with their shared state) and keeps the VMM thread's
 * ends of them: the serial queues. Workers build the buses from `specs` (devices/device-spec.ts).
 */
import type { DeviceSpec } from "../../devices/device-spec.ts";
import { ByteQueue, createByteQueueBuffer } from "../../devices/byte-queue.ts";
import { createSerial8250State } from "../../devices/serial-8250.ts";
import { createI8042State } from "../../devices/i8042.ts";
import { ACPI_POWER_PORT } from "../../devices/acpi-power.ts";
import { COM1_GSI, COM1_PORT } from "../arch/x86_64/layout.ts";

/** Serial input the guest has not read yet; small like a terminal's line buffer. */
const SERIAL_RX_CAPACITY = 1 << 12;

/** The legacy platform: COM1, i8042, ACPI power registers. */
export class DeviceManager {
  readonly specs: DeviceSpec[];
  /** Bytes the guest wrote to COM1. */
  readonly serialTx: ByteQueue;
  /** Bytes for the guest to read from COM1. */
  readonly serialRx: ByteQueue;

  constructor() {
    this.serialTx = new ByteQueue(createByteQueueBuffer());
    this.serialRx = new ByteQueue(createByteQueueBuffer(SERIAL_RX_CAPACITY));
    this.specs = [
      {
        kind: "serial-8250",
        name: "COM1",
        port: COM1_PORT,
        gsi: COM1_GSI,
        state: createSerial8250State(),
        tx: this.serialTx.buffer,
        rx: this.serialRx.buffer,
      },
      { kind: "i8042", name: "i8042", state: createI8042State() },
      { kind: "acpi-power", name: "acpi-power", port: ACPI_POWER_PORT },
    ];
  }
}
