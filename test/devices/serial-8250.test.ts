import { describe, expect, test } from "bun:test";
import { ByteQueue, createByteQueueBuffer } from "../../devices/byte-queue.ts";
import {
  createSerial8250State,
  Serial8250,
  UART_FCR,
  UART_IER,
  UART_IER_RDI,
  UART_IER_THRI,
  UART_IIR,
  UART_LCR,
  UART_LCR_DLAB,
  UART_LSR,
  UART_MCR,
  UART_MCR_LOOP,
  UART_MSR,
  UART_RX,
  UART_SCR,
  UART_TX,
} from "../../devices/serial-8250.ts";
import { RecordingIrqLine } from "../helpers/recording-irq-line.ts";

function uart() {
  const irq = new RecordingIrqLine();
  const out: number[] = [];
  const rx = new ByteQueue(createByteQueueBuffer(16));
  const dev = new Serial8250(createSerial8250State(), irq, (b) => out.push(b), rx);
  return { dev, irq, out, rx };
}

describe("Serial8250", () => {
  test.each([
    ["IER", UART_IER, 0x00],
    ["IIR (no interrupt)", UART_IIR, 0x01],
    ["LCR", UART_LCR, 0x00],
    ["MCR (OUT2)", UART_MCR, 0x08],
    ["LSR (THRE|TEMT)", UART_LSR, 0x60],
    ["MSR (DCD|DSR|CTS)", UART_MSR, 0xb0],
    ["SCR", UART_SCR, 0x00],
  ])("reset value of %s", (_name, offset, value) => {
    expect(uart().dev.read(offset, 1)).toBe(value);
  });

  test("write() to THR emits the byte and raises THRE once when IER.THRI is set", () => {
    const { dev, irq, out } = uart();
    dev.write(UART_IER, 1, UART_IER_THRI);
    expect(irq.level).toBe(1); // enabling THRI with THR empty interrupts at once
    expect(dev.read(UART_IIR, 1)).toBe(0x02); // reading IIR acknowledges THRE
    expect(irq.level).toBe(0);
    dev.write(UART_TX, 1, 0x41);
    expect(out).toEqual([0x41]);
    expect(irq.rises).toBe(2);
  });

  test("received bytes set LSR.DR and raise the RX interrupt until read", () => {
    const { dev, irq, rx } = uart();
    dev.write(UART_IER, 1, UART_IER_RDI);
    rx.push(0x7a);
    expect(dev.read(UART_LSR, 1) & 1).toBe(1);
    expect(dev.read(UART_IIR, 1)).toBe(0x04);
    expect(dev.read(UART_RX, 1)).toBe(0x7a);
    expect(dev.read(UART_LSR, 1) & 1).toBe(0);
    expect(irq.level).toBe(0);
    expect(dev.read(UART_RX, 1)).toBe(0); // empty FIFO reads 0
  });

  test("DLAB switches offsets 0 and 1 to the divisor latch", () => {
    const { dev, out } = uart();
    dev.write(UART_LCR, 1, UART_LCR_DLAB);
    dev.write(UART_TX, 1, 0x01);
    dev.write(UART_IER, 1, 0x02);
    expect(out).toEqual([]);
    expect(dev.read(UART_RX, 1)).toBe(0x01);
    expect(dev.read(UART_IER, 1)).toBe(0x02);
    dev.write(UART_LCR, 1, 0x03);
    expect(dev.read(UART_IER, 1)).toBe(0);
  });

  test("loopback mode returns written bytes and wires MCR to MSR", () => {
    const { dev, out } = uart();
    dev.write(UART_MCR, 1, UART_MCR_LOOP | 0x0f);
    dev.write(UART_TX, 1, 0x55);
    expect(out).toEqual([]);
    expect(dev.read(UART_RX, 1)).toBe(0x55);
    expect(dev.read(UART_MSR, 1)).toBe(0xf0);
  });

  test("FIFO enable shows in IIR; accesses wider than a byte are ignored and counted", () => {
    const { dev, out } = uart();
    dev.write(UART_FCR, 1, 1);
    expect(dev.read(UART_IIR, 1)).toBe(0xc1);
    dev.write(UART_TX, 2, 0x4142);
    expect(dev.read(UART_LSR, 4)).toBe(0xff);
    expect(out).toEqual([]);
    expect(dev.ignoredAccesses).toBe(2);
  });

  test("garbage at every offset and width never throws", () => {
    const { dev } = uart();
    for (let i = 0; i < 10_000; i++) {
      const size = ([1, 2, 4, 8] as const)[i % 4]!;
      dev.write(i % 9, size, (i * 2654435761) >>> 0);
      dev.read((i * 7) % 9, size);
    }
  });
});
