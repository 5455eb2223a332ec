/**
 * 16550A UART, registers only (PC16550D datasheet, "Register summary"; Linux's UART_* names).
 *
 * The guest sees: THR/RBR, IER, IIR/FCR, LCR (with DLAB and the divisor latch), MCR (with loopback),
 * LSR, MSR, SCR. Transmit is always ready (THRE|TEMT): bytes leave at once through `tx`, so a guest
 * never waits for the host. Receive comes from `rx`, a queue the VMM thread fills from stdin.
 *
 * Threads: runs on any vCPU worker; every register is a word in one SharedArrayBuffer (`state`), so
 * all workers see one UART. Writers: whichever vCPU the guest uses (guest drivers lock the port
 * themselves); the IRQ level word is swapped with Atomics.exchange so only the vCPU that changes the
 * level issues KVM_IRQ_LINE. Nothing here waits.
 *
 * This module is the front-end only, what every vCPU worker loads; the device type (resources, DSDT
 * entry, save/restore) is serial-8250-type.ts.
 */
import type { AccessSize, BusDevice } from "./bus.ts";
import { ByteQueue } from "./byte-queue.ts";
import type { Buses, DeviceContext, DeviceSpecBase } from "./device-type.ts";
import type { IrqLine } from "./irq-line.ts";

// Register offsets from the base port (DLAB = LCR bit 7 switches 0/1 to the divisor latch).
export const UART_RX = 0;
export const UART_TX = 0;
export const UART_DLL = 0;
export const UART_IER = 1;
export const UART_DLM = 1;
export const UART_IIR = 2;
export const UART_FCR = 2;
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;
/** Eight ports from the base (0x3f8-0x3ff for COM1). */
export const SERIAL_8250_SIZE = 8;

export const UART_IER_RDI = 0x01;
export const UART_IER_THRI = 0x02;
export const UART_IER_MASK = 0x0f;
export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_THRI = 0x02;
export const UART_IIR_RDI = 0x04;
export const UART_IIR_FIFO_ENABLED = 0xc0;
export const UART_FCR_ENABLE_FIFO = 0x01;
export const UART_LCR_DLAB = 0x80;
export const UART_MCR_DTR = 0x01;
export const UART_MCR_RTS = 0x02;
export const UART_MCR_OUT1 = 0x04;
export const UART_MCR_OUT2 = 0x08;
export const UART_MCR_LOOP = 0x10;
export const UART_MCR_MASK = 0x1f;
export const UART_LSR_DR = 0x01;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;
export const UART_MSR_CTS = 0x10;
export const UART_MSR_DSR = 0x20;
export const UART_MSR_RI = 0x40;
export const UART_MSR_DCD = 0x80;
/** Divisor 12 = 9600 baud from the 1.8432 MHz clock: the reset value Linux expects to find. */
const DEFAULT_DIVISOR_LOW = 0x0c;

/** Words of the shared state (Int32 indexes). */
const S = {
  IER: 0,
  LCR: 1,
  MCR: 2,
  SCR: 3,
  DLL: 4,
  DLM: 5,
  FCR: 6,
  /** THR-empty interrupt pending: set by a THR write or IER.THRI, cleared by reading IIR. */
  THRE_PENDING: 7,
  /** The level last driven on the IRQ line. */
  IRQ_LEVEL: 8,
  /** Accesses of a width other than 1 byte, ignored. */
  IGNORED: 9,
  /** Bytes received in loopback mode, waiting in RBR. */
  LOOPBACK_BYTE: 10,
} as const;
export const SERIAL_8250_STATE_WORDS = 11;
const NO_BYTE = -1;

/** Allocates the shared register words at their reset values. */
export function createSerial8250State(): SharedArrayBuffer {
  const buf = new SharedArrayBuffer(SERIAL_8250_STATE_WORDS * Int32Array.BYTES_PER_ELEMENT);
  const w = new Int32Array(buf);
  w[S.DLL] = DEFAULT_DIVISOR_LOW;
  w[S.MCR] = UART_MCR_OUT2;
  w[S.LOOPBACK_BYTE] = NO_BYTE;
  return buf;
}

/** The receive side as the UART needs it (a ByteQueue fits). */
export interface ByteSource {
  shift(): number;
  readonly readable: boolean;
}

/** 16550A register model over shared state; `tx` takes each transmitted byte. */
export class Serial8250 implements BusDevice {
  private readonly s: Int32Array;

  constructor(
    state: SharedArrayBuffer,
    private readonly irq: IrqLine,
    private readonly tx: (byte: number) => void,
    private readonly rx: ByteSource,
  ) {
    this.s = new Int32Array(state);
  }

  /** Accesses of the wrong width the guest made (ignored). */
  get ignoredAccesses(): number {
    return Atomics.load(this.s, S.IGNORED);
  }

  private get dlab(): boolean {
    return (Atomics.load(this.s, S.LCR) & UART_LCR_DLAB) !== 0;
  }

  private get loopback(): boolean {
    return (Atomics.load(this.s, S.MCR) & UART_MCR_LOOP) !== 0;
  }

  private dataReady(): boolean {
    return this.loopback ? Atomics.load(this.s, S.LOOPBACK_BYTE) !== NO_BYTE : this.rx.readable;
  }

  private iir(): number {
    const ier = Atomics.load(this.s, S.IER);
    const fifo = (Atomics.load(this.s, S.FCR) & UART_FCR_ENABLE_FIFO) !== 0 ? UART_IIR_FIFO_ENABLED : 0;
    if (ier & UART_IER_RDI && this.dataReady()) return fifo | UART_IIR_RDI;
    if (ier & UART_IER_THRI && Atomics.load(this.s, S.THRE_PENDING)) return fifo | UART_IIR_THRI;
    return fifo | UART_IIR_NO_INT;
  }

  /** Drives the IRQ line to match IIR; only a change of level reaches KVM. */
  private updateIrq(): void {
    const level = (this.iir() & UART_IIR_NO_INT) === 0 ? 1 : 0;
    if (Atomics.exchange(this.s, S.IRQ_LEVEL, level) !== level) this.irq.set(level);
  }

  read(offset: number, size: AccessSize): number {
    if (size !== 1) {
      Atomics.add(this.s, S.IGNORED, 1);
      return 0xff;
    }
    let value: number;
    switch (offset) {
      case UART_RX:
        if (this.dlab) return Atomics.load(this.s, S.DLL);
        value = this.loopback ? Atomics.exchange(this.s, S.LOOPBACK_BYTE, NO_BYTE) : this.rx.shift();
        value = Math.max(value, 0);
        break;
      case UART_IER:
        return this.dlab ? Atomics.load(this.s, S.DLM) : Atomics.load(this.s, S.IER);
      case UART_IIR:
        value = this.iir();
        if ((value & ~UART_IIR_FIFO_ENABLED) === UART_IIR_THRI) Atomics.store(this.s, S.THRE_PENDING, 0);
        break;
      case UART_LCR:
        return Atomics.load(this.s, S.LCR);
      case UART_MCR:
        return Atomics.load(this.s, S.MCR);
      case UART_LSR:
        return UART_LSR_THRE | UART_LSR_TEMT | (this.dataReady() ? UART_LSR_DR : 0);
      case UART_MSR:
        return this.msr();
      case UART_SCR:
        return Atomics.load(this.s, S.SCR);
      default:
        return 0xff;
    }
    this.updateIrq();
    return value;
  }

  private msr(): number {
    const mcr = Atomics.load(this.s, S.MCR);
    if (!(mcr & UART_MCR_LOOP)) return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
    // Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (Linux probes this).
    return (
      (mcr & UART_MCR_DTR ? UART_MSR_DSR : 0) |
      (mcr & UART_MCR_RTS ? UART_MSR_CTS : 0) |
      (mcr & UART_MCR_OUT1 ? UART_MSR_RI : 0) |
      (mcr & UART_MCR_OUT2 ? UART_MSR_DCD : 0)
    );
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (size !== 1) {
      Atomics.add(this.s, S.IGNORED, 1);
      return;
    }
    value &= 0xff;
    switch (offset) {
      case UART_TX:
        if (this.dlab) {
          Atomics.store(this.s, S.DLL, value);
          return;
        }
        if (this.loopback) Atomics.store(this.s, S.LOOPBACK_BYTE, value);
        else this.tx(value);
        Atomics.store(this.s, S.THRE_PENDING, 1);
        break;
      case UART_IER:
        if (this.dlab) {
          Atomics.store(this.s, S.DLM, value);
          return;
        }
        // Enabling THRI with THR empty raises the interrupt at once (Linux's probe relies on it).
        if (value & UART_IER_THRI && !(Atomics.load(this.s, S.IER) & UART_IER_THRI)) {
          Atomics.store(this.s, S.THRE_PENDING, 1);
        }
        Atomics.store(this.s, S.IER, value & UART_IER_MASK);
        break;
      case UART_FCR:
        Atomics.store(this.s, S.FCR, value);
        break;
      case UART_LCR:
        Atomics.store(this.s, S.LCR, value);
        return;
      case UART_MCR:
        Atomics.store(this.s, S.MCR, value & UART_MCR_MASK);
        break;
      case UART_SCR:
        Atomics.store(this.s, S.SCR, value);
        return;
      default:
        return; // LSR and MSR are read-only
    }
    this.updateIrq();
  }
}

/** A UART's spec: its ports and GSI, its register words, and the console queues. */
export interface Serial8250Spec extends DeviceSpecBase {
  readonly kind: "serial-8250";
  readonly port: number;
  readonly gsi: number;
  readonly state: SharedArrayBuffer;
  /** Transmitted bytes, drained by the VMM thread. */
  readonly tx: SharedArrayBuffer;
  /** Received bytes, filled by the VMM thread. */
  readonly rx: SharedArrayBuffer;
}

/** Every vCPU worker: the UART's registers on the PIO bus, over the spec's words and console queues. */
export function attachSerial8250(spec: Serial8250Spec, ctx: DeviceContext, buses: Buses): void {
  const tx = new ByteQueue(spec.tx);
  const dev = new Serial8250(spec.state, ctx.irqLine(spec.gsi), (b) => tx.push(b), new ByteQueue(spec.rx));
  buses.pio.insert(spec.port, SERIAL_8250_SIZE, dev, spec.name);
}
