/**
 * i8042 keyboard controller, only as much as guests use to reset the machine and to find no keyboard
 * (IBM PS/2 Technical Reference, "Keyboard/Auxiliary Device Controller"; like Firecracker's i8042).
 *
 * The guest sees: the data port (offset 0, port 0x60) and the status/command port (offset 4, 0x64).
 * Commands: 0x20 read the command byte, 0x60 write it, 0xAA self-test (answers 0x55), 0xFE pulse the
 * reset line (a "reset" request to the VMM). Everything else is accepted and ignored.
 *
 * Threads: any vCPU worker; state is shared words; posting the reset request never waits.
 */
import { I8042_COMMAND_PORT, I8042_DATA_PORT } from "../src/arch/x86_64/layout.ts";
import type { AccessSize, BusDevice } from "./bus.ts";
import { restoreBuffers, saveBuffers } from "./device-state.ts";
import { type Buses, type DeviceContext, type DeviceSpecBase, defineDeviceType } from "./device-type.ts";
import type { VmRequestSink } from "./vm-request.ts";

export const I8042_DATA = 0;
export const I8042_COMMAND = 4;

export const I8042_CMD_READ_CTR = 0x20;
export const I8042_CMD_WRITE_CTR = 0x60;
export const I8042_CMD_SELF_TEST = 0xaa;
export const I8042_CMD_RESET_CPU = 0xfe;
export const I8042_SELF_TEST_OK = 0x55;
export const I8042_STATUS_OUTPUT_FULL = 0x01;
export const I8042_STATUS_SYSTEM_FLAG = 0x04;
/** Command byte after reset: keyboard interrupt enabled, system flag set, translation on. */
const I8042_CTR_RESET = 0x45;

const S = { CTR: 0, OUTPUT: 1, OUTPUT_FULL: 2, EXPECT_CTR: 3, IGNORED: 4, RESETS: 5 } as const;
export const I8042_STATE_WORDS = 6;

export function createI8042State(): SharedArrayBuffer {
  const buf = new SharedArrayBuffer(I8042_STATE_WORDS * Int32Array.BYTES_PER_ELEMENT);
  new Int32Array(buf)[S.CTR] = I8042_CTR_RESET;
  return buf;
}

/** The keyboard controller: mostly the reset line. */
export class I8042 implements BusDevice {
  private readonly s: Int32Array;

  constructor(
    state: SharedArrayBuffer,
    private readonly request: VmRequestSink,
  ) {
    this.s = new Int32Array(state);
  }

  /** How many times the guest pulsed the reset line. */
  get resets(): number {
    return Atomics.load(this.s, S.RESETS);
  }

  private output(byte: number): void {
    Atomics.store(this.s, S.OUTPUT, byte);
    Atomics.store(this.s, S.OUTPUT_FULL, 1);
  }

  read(offset: number, size: AccessSize): number {
    if (size !== 1) {
      Atomics.add(this.s, S.IGNORED, 1);
      return 0xff;
    }
    if (offset === I8042_COMMAND) {
      return I8042_STATUS_SYSTEM_FLAG | (Atomics.load(this.s, S.OUTPUT_FULL) ? I8042_STATUS_OUTPUT_FULL : 0);
    }
    Atomics.store(this.s, S.OUTPUT_FULL, 0);
    return Atomics.load(this.s, S.OUTPUT);
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 1) {
      Atomics.add(this.s, S.IGNORED, 1);
      return;
    }
    value &= 0xff;
    if (offset === I8042_DATA) {
      if (Atomics.exchange(this.s, S.EXPECT_CTR, 0)) Atomics.store(this.s, S.CTR, value);
      return;
    }
    switch (value) {
      case I8042_CMD_READ_CTR:
        this.output(Atomics.load(this.s, S.CTR));
        break;
      case I8042_CMD_WRITE_CTR:
        Atomics.store(this.s, S.EXPECT_CTR, 1);
        break;
      case I8042_CMD_SELF_TEST:
        this.output(I8042_SELF_TEST_OK);
        break;
      case I8042_CMD_RESET_CPU:
        Atomics.add(this.s, S.RESETS, 1);
        this.request("reset", "i8042 command 0xfe");
        break;
      default:
        break;
    }
  }
}

export interface I8042Spec extends DeviceSpecBase {
  readonly kind: "i8042";
  readonly state: SharedArrayBuffer;
}

/** Every vCPU worker: the data and command ports on the PIO bus. */
export function attachI8042(spec: I8042Spec, ctx: DeviceContext, buses: Buses): void {
  const dev = new I8042(spec.state, ctx.request);
  buses.pio.insert(I8042_DATA_PORT, 1, dev, spec.name, I8042_DATA);
  buses.pio.insert(I8042_COMMAND_PORT, 1, dev, spec.name, I8042_COMMAND);
}

/** Layout of saved state: the I8042_STATE_WORDS words. */
const I8042_STATE_VERSION = 1;
const I8042_NAME = "i8042";

/** The controller at its fixed ports. No AML: the FADT's boot flags tell the OS it exists. */
export const i8042Type = defineDeviceType<I8042Spec>({
  kind: "i8042",
  create: (resources) => {
    resources.fixedPio(I8042_NAME, I8042_DATA_PORT, 1);
    resources.fixedPio(I8042_NAME, I8042_COMMAND_PORT, 1);
    return { kind: "i8042", name: I8042_NAME, state: createI8042State() };
  },
  attach: attachI8042,
  save: (spec) => saveBuffers(I8042_STATE_VERSION, [spec.state]),
  restore: (spec, state) => restoreBuffers(spec.name, I8042_STATE_VERSION, state, [spec.state]),
});
