/**
 * Entry point of a virtio device's Bun Worker (named "virtio" in src/vmm/worker-entries.ts): attaches
 * guest RAM and the transport's shared state, builds one SplitQueue per queue and the kind's back-end
 * (block, rng, console, net, vsock), and serves them through the device-worker loop
 * (devices/device-worker-loop.ts: poll on the queues' ioeventfds and the control eventfd, plus the net
 * and vsock back-ends' own fds as their `pollRequests()` asks, recomputed every round; finish the
 * request, frame or packet in flight before parking; re-check every queue on resume, so a notification
 * sent around a pause is never lost).
 *
 * Pause holds net and vsock between frames and packets: while the worker is parked nothing is read
 * from or written to the TAP or the sockets, so frames wait in the TAP's queue and host bytes in the
 * sockets (both bounded by the kernel), and the guest's rings stay as they were. The TAP fd and the
 * vsock listener belong to the VMM thread (opened in `connect`); this worker closes only the vsock
 * connections it accepted or made.
 *
 * A completion batch the driver wants to hear about writes the irqfd: one edge on the GSI, counted in
 * VIRTIO_COUNTER_INTERRUPTS. A reset by the driver (Status = 0) bumps the transport's reset epoch, and
 * the queues publish nothing for chains popped before it; the back-ends keep no other per-request state.
 *
 * After a restore the worker is the same, started over restored shared words: its counts continue from
 * the saved ones, its first run re-checks every queue (a request posted before the snapshot and not
 * popped is served), and a vsock device posts the TRANSPORT_RESET event its restore flagged.
 *
 * Threads: this worker's thread only; it never waits for the VMM or a vCPU.
 */

import { serveDeviceWorker } from "../../devices/device-worker-loop.ts";
import { BLK_BAD_REQUESTS, BlockBackend, type OpenedImage } from "../../devices/virtio/block.ts";
// Back-end modules only: the device types (*-device.ts, with their AML) are the VMM thread's, and
// their types below are erased (devices/frontends.ts says why a worker loads only what it runs).
import { CONSOLE_BYTES_DROPPED, CONSOLE_BYTES_OUT, ConsoleBackend } from "../../devices/virtio/console.ts";
import type { ConsoleDeviceInit } from "../../devices/virtio/console-device.ts";
import type { VirtioBackendInit } from "../../devices/virtio/mmio-device.ts";
import {
  VIRTIO_COUNTER_BAD_REQUESTS,
  VIRTIO_COUNTER_INTERRUPTS,
  VirtioMmioState,
} from "../../devices/virtio/mmio-transport.ts";
import { NET_BAD_CHAINS, NET_COUNTERS, NET_TAP_FAILED, NetBackend } from "../../devices/virtio/net.ts";
import type { NetDeviceInit } from "../../devices/virtio/net-device.ts";
import { SplitQueue } from "../../devices/virtio/queue.ts";
import { RNG_BYTES, RngBackend } from "../../devices/virtio/rng.ts";
import type { RngDeviceInit } from "../../devices/virtio/rng-device.ts";
import { Tap } from "../../devices/virtio/tap.ts";
import {
  VSOCK_BAD_CHAINS,
  VSOCK_BAD_PACKETS,
  VSOCK_COUNTERS,
  VSOCK_EVENT_QUEUE,
  VSOCK_OPEN_CONNECTIONS,
  VSOCK_RESET_OWED,
  VsockBackend,
} from "../../devices/virtio/vsock.ts";
import type { VsockDeviceInit } from "../../devices/virtio/vsock-device.ts";
import { libc } from "../../ffi/libc.ts";
import { GuestMemory, GuestMemoryError } from "../memory/guest-memory.ts";
import { EventFd } from "../sys/eventfd.ts";
import type { PollInterest } from "../sys/poll.ts";

/** What serves one kind's queues; true when the driver wants an interrupt. */
interface KindBackend {
  processQueue(queue: SplitQueue, memory: GuestMemory): boolean;
  /** The back-end's own fds to poll (net, vsock), asked before every sleep. */
  pollRequests?(): readonly PollInterest[];
  /** One of them is ready; true when the driver wants an interrupt. */
  onPoll?(fd: number, revents: number, memory: GuestMemory): boolean;
  /** Copies the back-end's own counts into the shared counter words. */
  publishCounters(): void;
  /** Releases what the back-end holds in this worker (never the VMM thread's fds). */
  close(): void;
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
 * Publishes `words` counter words of a back-end's own array into the device's shared ones, on top of
 * `base`: what the shared words held when the worker started (zero on a boot, the saved counts after a
 * restore), so a restored device keeps counting.
 */
function copyCounters(from: BigInt64Array, to: BigInt64Array, words: number, base: BigInt64Array): void {
  for (let w = 0; w < words; w++) Atomics.store(to, w, base[w]! + Atomics.load(from, w));
}

function kindBackend(init: VirtioBackendInit, counters: BigInt64Array, queues: SplitQueue[]): KindBackend {
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
    case "virtio-net": {
      const d = init.device as NetDeviceInit;
      // The TAP is the VMM thread's: this worker uses its fd and never closes it.
      const net = new NetBackend(Tap.fromFd(d.tapName, d.tapFd), {
        mac: d.mac,
        mtu: d.mtu,
        queueSize: d.queueSize,
      });
      const base = counters.slice(0, NET_COUNTERS);
      const bad = Atomics.load(counters, VIRTIO_COUNTER_BAD_REQUESTS);
      return {
        processQueue: (q, m) => net.processQueue(q, m),
        pollRequests: () => net.pollRequests(),
        onPoll: (fd, revents, m) => net.onPoll(fd, revents, queues, m),
        publishCounters: () => {
          copyCounters(net.counters, counters, NET_COUNTERS, base);
          Atomics.store(counters, NET_TAP_FAILED, net.failure === null ? 0n : 1n);
          Atomics.store(counters, VIRTIO_COUNTER_BAD_REQUESTS, bad + BigInt(net.counter(NET_BAD_CHAINS)));
        },
        close: () => {},
      };
    }
    case "virtio-vsock": {
      const d = init.device as VsockDeviceInit;
      const vsock = new VsockBackend({
        cid: d.cid,
        socket: d.socket,
        queueSize: d.queueSize,
        listenerFd: d.listenerFd,
      });
      const base = counters.slice(0, VSOCK_COUNTERS);
      const bad = Atomics.load(counters, VIRTIO_COUNTER_BAD_REQUESTS);
      /** After a restore: the guest is owed TRANSPORT_RESET (vsock-device.ts); true: interrupt. */
      const owedReset = (m: GuestMemory) =>
        Atomics.exchange(counters, VSOCK_RESET_OWED, 0n) !== 0n &&
        vsock.transportReset(queues[VSOCK_EVENT_QUEUE]!, m);
      return {
        // The event first, then the call itself, always (both may want an interrupt).
        processQueue: (q, m) => {
          const event = owedReset(m);
          return vsock.processQueue(q, m, queues) || event;
        },
        pollRequests: () => vsock.pollRequests(),
        onPoll: (fd, revents, m) => {
          const event = owedReset(m);
          return vsock.onPoll(fd, revents, queues, m) || event;
        },
        publishCounters: () => {
          copyCounters(vsock.counters, counters, VSOCK_COUNTERS, base);
          Atomics.store(counters, VSOCK_OPEN_CONNECTIONS, BigInt(vsock.connectionCount));
          Atomics.store(
            counters,
            VIRTIO_COUNTER_BAD_REQUESTS,
            bad + BigInt(vsock.counter(VSOCK_BAD_PACKETS) + vsock.counter(VSOCK_BAD_CHAINS)),
          );
        },
        // Closes the connections' sockets (the host sides read EOF); the listener is the VMM thread's.
        close: () => vsock.reset(),
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
  const backend = kindBackend(init, counters, queues);
  const irq = EventFd.from(init.irqFd);
  /** Queues found stopped under us by a racing reset (counted as bad requests). */
  let queueStops = 0;
  /**
   * Runs one serving step. A driver that resets the device or moves its rings while we serve them
   * ([reset-races-device]) can leave a ring address outside RAM under us: that queue has stopped, the
   * device goes on, and the stop is counted as a bad request.
   */
  const serve = (step: () => boolean) => {
    let wantsInterrupt = false;
    try {
      wantsInterrupt = step();
    } catch (e) {
      if (!(e instanceof GuestMemoryError)) throw e;
      queueStops++;
    }
    backend.publishCounters(); // the back-end's own counts, absolute; the stops are added on top
    if (queueStops > 0) Atomics.add(counters, VIRTIO_COUNTER_BAD_REQUESTS, BigInt(queueStops));
    if (wantsInterrupt) {
      irq.write();
      Atomics.add(counters, VIRTIO_COUNTER_INTERRUPTS, 1n);
    }
  };
  const pollRequests = backend.pollRequests;
  const onPoll = backend.onPoll;
  return {
    queueFds: init.queueFds,
    process: (queue) => serve(() => backend.processQueue(queues[queue]!, memory)),
    ...(pollRequests && onPoll
      ? { pollRequests, onPoll: (fd: number, revents: number) => serve(() => onPoll(fd, revents, memory)) }
      : {}),
    close: () => backend.close(),
  };
});
