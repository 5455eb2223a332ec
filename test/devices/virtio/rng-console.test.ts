/**
 * virtio-rng and virtio-console back-ends on guest memory: entropy arrives and differs; guest output
 * reaches the sink, host input reaches receive buffers; a reset in the middle of a request (from inside
 * the sink) publishes nothing.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CONSOLE_RECEIVEQ, CONSOLE_TRANSMITQ, ConsoleBackend } from "../../../devices/virtio/console.ts";
import { RNG_MAX_BYTES_PER_REQUEST, RngBackend } from "../../../devices/virtio/rng.ts";
import {
  VIRTIO_CONSOLE_CONFIG_LAYOUT,
  VIRTIO_ID_CONSOLE,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_STATUS,
} from "../../../ffi/virtio-layouts.ts";
import { TestDriver } from "../../helpers/virtio-driver.ts";

describe("virtio-rng", () => {
  test("fills device-writable buffers with bytes that differ between requests", () => {
    const rng = new RngBackend();
    const d = new TestDriver(rng.info);
    try {
      d.init();
      const q = d.queue(0);
      const a = d.alloc(64);
      const b = d.alloc(64);
      d.post(0, [
        { addr: a, len: 32, write: true },
        { addr: a + 32, len: 32, write: true },
      ]);
      d.post(0, [{ addr: b, len: 64, write: true }], { indirect: true });
      expect(rng.processQueue(q, d.memory)).toBe(true);
      expect(d.usedIdx(0)).toBe(2);
      expect(d.usedElem(0, 0).len).toBe(64);
      expect(d.usedElem(0, 1).len).toBe(64);
      const x = d.memory.read(a, 64);
      const y = d.memory.read(b, 64);
      expect(x.some((v) => v !== 0)).toBe(true);
      expect(Buffer.from(x).equals(Buffer.from(y))).toBe(false);
      expect(rng.bytesServed).toBe(128);
    } finally {
      rng.close();
      d.close();
    }
  });

  test("reads a configured source, caps one request, and refuses device-readable buffers", () => {
    const dir = mkdtempSync(join(tmpdir(), "bunvmm-rng-"));
    const path = join(dir, "entropy");
    writeFileSync(path, new Uint8Array(RNG_MAX_BYTES_PER_REQUEST * 2).fill(0x5a));
    const rng = new RngBackend(path);
    const d = new TestDriver(rng.info);
    try {
      d.init();
      const big = d.alloc(RNG_MAX_BYTES_PER_REQUEST + 4096);
      d.post(0, [{ addr: big, len: RNG_MAX_BYTES_PER_REQUEST + 4096, write: true }]);
      d.post(0, [{ addr: big, len: 16 }]);
      rng.processQueue(d.queue(0), d.memory);
      expect(d.usedElem(0, 0).len).toBe(RNG_MAX_BYTES_PER_REQUEST);
      expect(d.memory.read(big, 4).every((v) => v === 0x5a)).toBe(true);
      expect(d.usedElem(0, 1).len).toBe(0);
      expect(rng.badRequests).toBe(1);
    } finally {
      rng.close();
      d.close();
      rmSync(dir, { recursive: true });
    }
  });
});

describe("virtio-console", () => {
  test("guest output reaches the sink in order; host input fills receive buffers across chains", () => {
    const out: string[] = [];
    const con = new ConsoleBackend((bytes) => out.push(new TextDecoder().decode(bytes)));
    const d = new TestDriver(con.info);
    try {
      expect(d.read(VIRTIO_MMIO_DEVICE_ID)).toBe(VIRTIO_ID_CONSOLE);
      expect(d.read(VIRTIO_MMIO_CONFIG + VIRTIO_CONSOLE_CONFIG_LAYOUT.fields.max_nr_ports.offset)).toBe(1);
      d.init();
      const tx = d.queue(CONSOLE_TRANSMITQ);
      const rx = d.queue(CONSOLE_RECEIVEQ);
      const hello = d.alloc(16);
      d.memory.write(hello, new TextEncoder().encode("hello, "));
      const world = d.alloc(16);
      d.memory.write(world, new TextEncoder().encode("world"));
      d.post(CONSOLE_TRANSMITQ, [{ addr: hello, len: 7 }]);
      d.post(CONSOLE_TRANSMITQ, [{ addr: world, len: 5 }]);
      expect(con.processQueue(tx, d.memory)).toBe(true);
      expect(out.join("")).toBe("hello, world");
      expect(d.usedIdx(CONSOLE_TRANSMITQ)).toBe(2);
      expect(d.usedElem(CONSOLE_TRANSMITQ, 0).len).toBe(0);

      con.input(new TextEncoder().encode("typed input"));
      expect(con.processQueue(rx, d.memory)).toBe(false); // no receive buffers posted yet
      expect(con.pendingInput).toBe(11);
      const r1 = d.alloc(8);
      const r2 = d.alloc(8);
      d.post(CONSOLE_RECEIVEQ, [{ addr: r1, len: 8, write: true }]);
      d.post(CONSOLE_RECEIVEQ, [{ addr: r2, len: 8, write: true }]);
      expect(con.processQueue(rx, d.memory)).toBe(true);
      expect(d.usedElem(CONSOLE_RECEIVEQ, 0).len).toBe(8);
      expect(d.usedElem(CONSOLE_RECEIVEQ, 1).len).toBe(3);
      const got = new TextDecoder().decode(
        new Uint8Array([...d.memory.read(r1, 8), ...d.memory.read(r2, 3)]),
      );
      expect(got).toBe("typed input");
      expect(con.pendingInput).toBe(0);
    } finally {
      d.close();
    }
  });

  test("a reset from inside the sink (mid-request) publishes no used element and stops the queue", () => {
    let d: TestDriver | null = null;
    const con = new ConsoleBackend(() => d!.write(VIRTIO_MMIO_STATUS, 0));
    d = new TestDriver(con.info);
    try {
      d.init();
      const at = d.alloc(8);
      d.post(CONSOLE_TRANSMITQ, [{ addr: at, len: 4 }]);
      d.post(CONSOLE_TRANSMITQ, [{ addr: at, len: 4 }]);
      expect(con.processQueue(d.queue(CONSOLE_TRANSMITQ), d.memory)).toBe(false);
      expect(d.usedIdx(CONSOLE_TRANSMITQ)).toBe(0);
      expect(d.read(VIRTIO_MMIO_STATUS)).toBe(0);
    } finally {
      d.close();
    }
  });
});
