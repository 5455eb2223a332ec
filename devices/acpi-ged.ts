/**
 * ACPI Generic Event Device (ACPI 6.5, section 5.6.9, HID ACPI0013): how a hardware-reduced machine tells
 * the guest "look at your CPUs" or "the power button was pressed". One notification register; the DSDT
 * device `\_SB.GED_` (built below) has its interrupt, the register as a Field from GED_FIELDS, and
 * `_EVT`, which reads GDAT once (the read clears it) and runs the handler of each GedEvent bit that is set.
 *
 *   offset 0  GDAT  u32, exactly 4-byte access: read returns the pending events and clears them
 *
 * Threads: the VMM thread raises events (`GedState.raise`: Atomics.or, then the IRQ edge); any vCPU
 * reads the register (Atomics.exchange). Nothing waits.
 *
 * This module is the register and its shared state, what every vCPU worker loads; the device type (the
 * DSDT device `GED_` with `_EVT`, resources, save/restore) is acpi-ged-type.ts.
 */
import type { AccessSize, BusDevice } from "./bus.ts";
import type { Buses, DeviceContext, DeviceSpecBase } from "./device-type.ts";
import type { IrqLine } from "./irq-line.ts";

export const GED_SIZE = 4;
export const GED_NOTIFICATION_OFFSET = 0;
/** The register as an AML Field unit: [name, bits]. */
export const GED_FIELDS = [["GDAT", 32]] as const;

/** Event bits in GDAT; the device and the AML `_EVT` share this one definition. */
export const GedEvent = {
  /** CPU devices changed: the guest runs \_SB.CPUS.CSCN. */
  CpuHotplug: 1 << 0,
  /** Power button pressed: the guest notifies \_SB.PWRB. */
  PowerButton: 1 << 1,
} as const;
export type GedEventBit = (typeof GedEvent)[keyof typeof GedEvent];

const PENDING = 0;
const IGNORED = 1;
const GED_STATE_WORDS = 2;

export function createGedState(): SharedArrayBuffer {
  return new SharedArrayBuffer(GED_STATE_WORDS * Int32Array.BYTES_PER_ELEMENT);
}

/** The VMM thread's handle: raise events. */
export class GedState {
  private readonly words: Int32Array;
  constructor(
    buffer: SharedArrayBuffer,
    private readonly irq: IrqLine,
  ) {
    this.words = new Int32Array(buffer);
  }

  /** Marks `event` pending and sends an interrupt edge. */
  raise(event: GedEventBit): void {
    Atomics.or(this.words, PENDING, event);
    this.irq.set(1);
    this.irq.set(0);
  }

  /** Events raised and not yet read by the guest. */
  get pending(): number {
    return Atomics.load(this.words, PENDING);
  }
}

/** The guest's view: one read-to-clear register. */
export class AcpiGed implements BusDevice {
  private readonly words: Int32Array;
  constructor(buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
  }

  get ignoredAccesses(): number {
    return Atomics.load(this.words, IGNORED);
  }

  read(offset: number, size: AccessSize): number {
    if (offset === GED_NOTIFICATION_OFFSET && size === 4)
      return Atomics.exchange(this.words, PENDING, 0) >>> 0;
    Atomics.add(this.words, IGNORED, 1);
    return 0;
  }

  write(_offset: number, _size: AccessSize, _value: number): void {
    Atomics.add(this.words, IGNORED, 1);
  }
}

export interface AcpiGedSpec extends DeviceSpecBase {
  readonly kind: "acpi-ged";
  readonly base: number;
  readonly gsi: number;
  readonly state: SharedArrayBuffer;
}

/** Every vCPU worker: the notification register on the MMIO bus. */
export function attachAcpiGed(spec: AcpiGedSpec, _ctx: DeviceContext, buses: Buses): void {
  buses.mmio.insert(spec.base, GED_SIZE, new AcpiGed(spec.state), spec.name);
}
