/**
 * virtio-console back-end with one port and no MULTIPORT: queue 0 (receiveq) carries host bytes to the
 * guest, queue 1 (transmitq) carries guest bytes to the host.
 *
 * Host -> guest: bytes given to `input()` wait in a bounded buffer until the driver posts receive
 * buffers; each chain is filled with as many as fit. Guest -> host: every transmit chain's readable
 * bytes go to the `sink` callback, in order, and the chain completes with used length 0 (the device
 * wrote nothing). A refused chain, or a transmit chain with writable buffers, is dropped with length 0
 * and counted.
 *
 * Config space: cols, rows (0: unknown), max_nr_ports = 1, emerg_wr; no feature offered reads them,
 * but a driver may.
 *
 * Threads: run by the device's worker (tests run it in-line).
 */
import {
  VIRTIO_CONSOLE_CONFIG_LAYOUT,
  VIRTIO_ID_CONSOLE,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "../../ffi/virtio-layouts.ts";
import { setField, viewOf } from "../../src/arch/x86_64/struct-layout.ts";
import type { GuestMemory } from "../../src/memory/guest-memory.ts";
import type { VirtioDeviceInfo } from "./mmio-transport.ts";
import { gather, type SplitQueue, scatter } from "./queue.ts";

/** Counter words (the device worker writes them, console-device.ts reports them): guest bytes written out, guest bytes lost (the output failed). */
export const CONSOLE_BYTES_OUT = 0;
export const CONSOLE_BYTES_DROPPED = 1;

export const CONSOLE_RECEIVEQ = 0;
export const CONSOLE_TRANSMITQ = 1;
export const CONSOLE_QUEUE_SIZE = 64;
/** Host bytes kept while the guest posts no receive buffers; older input beyond this is dropped. */
export const CONSOLE_INPUT_LIMIT = 1 << 16;

/** The transport description of a console device. */
export function consoleInfo(): VirtioDeviceInfo {
  const L = VIRTIO_CONSOLE_CONFIG_LAYOUT;
  const config = new Uint8Array(L.size);
  setField(viewOf(config), 0, L.fields.max_nr_ports, 1);
  return {
    deviceId: VIRTIO_ID_CONSOLE,
    features: (1n << BigInt(VIRTIO_RING_F_EVENT_IDX)) | (1n << BigInt(VIRTIO_RING_F_INDIRECT_DESC)),
    queues: 2,
    queueNumMax: CONSOLE_QUEUE_SIZE,
    config,
    configFields: Object.values(L.fields),
  };
}

export class ConsoleBackend {
  readonly info = consoleInfo();
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Host bytes dropped because the guest did not take them in time; chains refused. */
  droppedInput = 0;
  badRequests = 0;

  constructor(private readonly sink: (bytes: Uint8Array) => void) {}

  /** Queues host bytes for the guest (call processReceive to deliver them). */
  input(bytes: Uint8Array): void {
    this.pending.push(bytes.slice());
    this.pendingBytes += bytes.length;
    while (this.pendingBytes > CONSOLE_INPUT_LIMIT) {
      const old = this.pending.shift()!;
      this.pendingBytes -= old.length;
      this.droppedInput += old.length;
    }
  }

  get pendingInput(): number {
    return this.pendingBytes;
  }

  /** Delivers pending host bytes into receive buffers; true when the driver wants an interrupt. */
  processReceive(queue: SplitQueue, memory: GuestMemory): boolean {
    while (this.pendingBytes > 0) {
      const chain = queue.pop();
      if (chain === null) break;
      let written = 0;
      if (chain.error !== null || chain.readable.length > 0) this.badRequests++;
      else {
        const all = new Uint8Array(this.pendingBytes);
        let at = 0;
        for (const p of this.pending) {
          all.set(p, at);
          at += p.length;
        }
        written = scatter(memory, chain.writable, all);
        const rest = all.subarray(written);
        this.pending = rest.length > 0 ? [rest.slice()] : [];
        this.pendingBytes = rest.length;
      }
      queue.pushUsed(chain, written);
    }
    return queue.signalIfNeeded();
  }

  /** Hands every transmit chain's bytes to the sink; true when the driver wants an interrupt. */
  processTransmit(queue: SplitQueue, memory: GuestMemory): boolean {
    for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
      if (chain.error !== null || chain.writable.length > 0) this.badRequests++;
      else this.sink(gather(memory, chain.readable));
      queue.pushUsed(chain, 0);
    }
    return queue.signalIfNeeded();
  }

  /** Serves whichever queue `index` names. */
  processQueue(queue: SplitQueue, memory: GuestMemory): boolean {
    return queue.index === CONSOLE_RECEIVEQ
      ? this.processReceive(queue, memory)
      : this.processTransmit(queue, memory);
  }
}
