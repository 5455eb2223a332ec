/**
 * Entry point of a virtio device's Bun Worker (named "virtio" in src/vmm/worker-entries.ts): attaches
 * guest RAM and the transport's shared state, builds one SplitQueue per queue and the kind's back-end
 * (block, rng, console), and serves them through the device-worker loop (devices/device-worker-loop.ts:
 * poll on the queues' ioeventfds and the control eventfd, finish the request in flight before parking,
 * re-check every queue on resume, so a notification sent around a pause is never lost).
 *
 * A completion batch the driver wants to hear about writes the irqfd: one edge on the GSI, counted in
 * VIRTIO_COUNTER_INTERRUPTS. A reset by the driver (Status = 0) bumps the transport's reset epoch, and
 * the queues publish nothing for chains popped before it; the back-ends keep no other per-request state.
 *
 * After a restore (VirtioBackendInit.restored) the worker is the same, started over restored shared
 * words: its counts continue from the saved ones, its first run re-checks every queue (a request posted
 * before the snapshot and not popped is served), and a kind with an `afterRestore` gets that call first.
 *
 * Threads: this worker's thread only; it never waits for the VMM or a vCPU.
 */

import { serveDeviceWorker } from "../../devices/device-worker-loop.ts";
import { BLK_BAD_REQUESTS, BlockBackend, type OpenedImage } from "../../devices/virtio/block.ts";
import { ConsoleBackend } from "../../devices/virtio/console.ts";
import {
  CONSOLE_BYTES_DROPPED,
  CONSOLE_BYTES_OUT,
  type ConsoleDeviceInit,
} from "../../devices/virtio/console-device.ts";
import {
  VIRTIO_COUNTER_BAD_REQUESTS,
  VIRTIO_COUNTER_INTERRUPTS,
  type VirtioBackendInit,
} from "../../devices/virtio/mmio-device.ts";
import { VirtioMmioState } from "../../devices/virtio/mmio-transport.ts";
import { SplitQueue } from "../../devices/virtio/queue.ts";
import { RngBackend } from "../../devices/virtio/rng.ts";
import { RNG_BYTES, type RngDeviceInit } from "../../devices/virtio/rng-device.ts";
import { libc } from "../../ffi/libc.ts";
import { GuestMemory, GuestMemoryError } from "../memory/guest-memory.ts";
import { EventFd } from "../sys/eventfd.ts";

/** What serves one kind's queues; true when the driver wants an interrupt. */
interface KindBackend {
  processQueue(queue: SplitQueue, memory: GuestMemory): boolean;
  /** Copies the back-end's own counts into the shared counter words. */
  publishCounters(): void;
  /** Releases what the back-end holds in this worker (never the VMM thread's fds). */
  close(): void;
  /**
   * Once, the first time the worker runs after a restore (VirtioBackendInit.restored), before the queues
   * are re-checked; true when the driver wants an interrupt. The hook for vsock's TRANSPORT_RESET event;
   * blk, rng and console owe a restored driver nothing (their queues' state was restored whole).
   */
  afterRestore?(queues: SplitQueue[], memory: GuestMemory): boolean;
}

/** Writes all of `bytes` to `fd`; false when the output failed (the bytes are dropped). */
function writeAll(fd: number, bytes: Uint8Array): boolean {
  let at = 0;
  // Bounded: every round writes at least one byte or gives up.
  while (at < bytes.length) {
    const rest = bytes.subarray(at);
    const n = Number(libc.write(fd, rest, rest.length));
    if (n <= 0) return false;
    at += n;
  }
  return true;
}

/**
 * The kind's back-end. Counts continue from what the shared words hold when the worker starts: zero on
 * a boot, the saved counts after a restore (DeviceType.restore wrote them before any worker started).
 */
function kindBackend(init: VirtioBackendInit, counters: BigInt64Array): KindBackend {
  switch (init.kind) {
    case "virtio-blk": {
      const disk = BlockBackend.adopt(init.device as OpenedImage, counters.buffer as SharedArrayBuffer);
      return {
        processQueue: (q, m) => disk.processQueue(q, m),
        // The block back-end counts in the shared words itself; mirror bad requests to the common word.
        publishCounters: () =>
          Atomics.store(counters, VIRTIO_COUNTER_BAD_REQUESTS, Atomics.load(counters, BLK_BAD_REQUESTS)),
        close: () => disk.close(), // adopted: unmaps the O_DIRECT bounce buffer, leaves the fd
      };
    }
    case "virtio-rng": {
      const rng = new RngBackend((init.device as RngDeviceInit).source);
      const bytes = Atomics.load(counters, RNG_BYTES);
      const bad = Atomics.load(counters, VIRTIO_COUNTER_BAD_REQUESTS);
      return {
        processQueue: (q, m) => rng.processQueue(q, m),
        publishCounters: () => {
          Atomics.store(counters, RNG_BYTES, bytes + BigInt(rng.bytesServed));
          Atomics.store(counters, VIRTIO_COUNTER_BAD_REQUESTS, bad + BigInt(rng.badRequests));
        },
        close: () => rng.close(),
      };
    }
    case "virtio-console": {
      const { outFd } = init.device as ConsoleDeviceInit;
      let out = Atomics.load(counters, CONSOLE_BYTES_OUT);
      let dropped = Atomics.load(counters, CONSOLE_BYTES_DROPPED);
      const bad = Atomics.load(counters, VIRTIO_COUNTER_BAD_REQUESTS);
      const console = new ConsoleBackend((bytes) => {
        if (writeAll(outFd, bytes)) out += BigInt(bytes.length);
        else dropped += BigInt(bytes.length);
      });
      return {
        processQueue: (q, m) => console.processQueue(q, m),
        publishCounters: () => {
          Atomics.store(counters, CONSOLE_BYTES_OUT, out);
          Atomics.store(counters, CONSOLE_BYTES_DROPPED, dropped);
          Atomics.store(counters, VIRTIO_COUNTER_BAD_REQUESTS, bad + BigInt(console.badRequests));
        },
        close: () => {},
      };
    }
  }
}

serveDeviceWorker((raw) => {
  const init = raw as VirtioBackendInit;
  const memory = GuestMemory.attach(init.regions);
  const state = new VirtioMmioState(init.state);
  const queues = init.queueFds.map((_, q) => new SplitQueue(state, q, memory));
  const counters = new BigInt64Array(init.counters);
  const backend = kindBackend(init, counters);
  const irq = EventFd.from(init.irqFd);
  /** Queues found stopped under us by a racing reset (counted as bad requests). */
  let queueStops = 0;
  const interrupt = () => {
    irq.write();
    Atomics.add(counters, VIRTIO_COUNTER_INTERRUPTS, 1n);
  };
  const { afterRestore } = backend;
  return {
    queueFds: init.queueFds,
    firstRun:
      init.restored && afterRestore
        ? () => {
            if (afterRestore(queues, memory)) interrupt();
          }
        : undefined,
    process(queue) {
      let wantsInterrupt = false;
      try {
        wantsInterrupt = backend.processQueue(queues[queue]!, memory);
      } catch (e) {
        // A driver that resets the device or moves its rings while we serve them ([reset-races-device])
        // can leave a ring address outside RAM under us: that queue has stopped, the device goes on.
        if (!(e instanceof GuestMemoryError)) throw e;
        queueStops++;
      }
      backend.publishCounters(); // the back-end's own counts, absolute; the stops are added on top
      if (queueStops > 0) Atomics.add(counters, VIRTIO_COUNTER_BAD_REQUESTS, BigInt(queueStops));
      if (wantsInterrupt) interrupt();
    },
    close: () => backend.close(),
  };
});
