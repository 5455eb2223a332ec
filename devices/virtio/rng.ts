/**
 * virtio-rng (entropy device) back-end: one request queue whose chains are device-writable buffers,
 * filled from /dev/urandom or another configured source (a file, a FIFO). No config space, no device
 * features beyond the ring ones.
 *
 * A chain with a device-readable buffer, or a refused chain, completes with used length 0. At most
 * RNG_MAX_BYTES_PER_REQUEST are served per chain, so one request cannot keep the worker busy for long;
 * the driver asks again for more.
 *
 * Threads: run by the device's worker (tests run it in-line).
 */
import { closeSync, openSync } from "node:fs";
import { errno, libc } from "../../ffi/libc.ts";
import {
  VIRTIO_ID_RNG,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "../../ffi/virtio-layouts.ts";
import type { GuestMemory } from "../../src/memory/guest-memory.ts";
import { LibcError } from "../../src/sys/libc-error.ts";
import type { VirtioDeviceInfo } from "./mmio-transport.ts";
import type { Chain, SplitQueue } from "./queue.ts";

/** Counter word: bytes handed to the guest. */
export const RNG_BYTES = 0;

export const RNG_DEFAULT_SOURCE = "/dev/urandom";
export const RNG_QUEUE_SIZE = 64;
/** Upper bound of the bytes one chain receives. */
export const RNG_MAX_BYTES_PER_REQUEST = 1 << 16;

/** The transport description of an rng device. */
export function rngDeviceInfo(): VirtioDeviceInfo {
  return {
    deviceId: VIRTIO_ID_RNG,
    features: (1n << BigInt(VIRTIO_RING_F_EVENT_IDX)) | (1n << BigInt(VIRTIO_RING_F_INDIRECT_DESC)),
    queues: 1,
    queueNumMax: RNG_QUEUE_SIZE,
    config: new Uint8Array(0),
    configFields: [],
  };
}

export class RngBackend {
  readonly info: VirtioDeviceInfo = rngDeviceInfo();
  /** Bytes handed to the guest, and chains refused. */
  bytesServed = 0;
  badRequests = 0;
  private readonly fd: number;

  /** @throws {Error} naming the path when the source cannot be opened. */
  constructor(readonly source = RNG_DEFAULT_SOURCE) {
    this.fd = openSync(source, "r");
  }

  /** Serves every available chain; true when the driver wants an interrupt. */
  processQueue(queue: SplitQueue, memory: GuestMemory): boolean {
    for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
      queue.pushUsed(chain, this.fill(chain, memory));
    }
    return queue.signalIfNeeded();
  }

  private fill(chain: Chain, memory: GuestMemory): number {
    if (chain.error !== null || chain.readable.length > 0) {
      this.badRequests++;
      return 0;
    }
    let written = 0;
    for (const b of chain.writable) {
      const want = Math.min(b.len, RNG_MAX_BYTES_PER_REQUEST - written);
      if (want <= 0) break;
      const n = Number(libc.read(this.fd, memory.slice(b.addr, want), want));
      if (n < 0) throw new LibcError(`read entropy from ${this.source}`, errno());
      written += n;
      if (n < want) break; // a short read (a FIFO with less ready): hand over what arrived
    }
    this.bytesServed += written;
    return written;
  }

  close(): void {
    closeSync(this.fd);
  }
}
