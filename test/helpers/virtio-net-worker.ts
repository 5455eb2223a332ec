/**
 * A device worker for the cross-thread virtio-net test, in the shape the VMM's device worker will have:
 * it attaches guest RAM and the transport's shared state, takes over a TAP the test thread opened (by
 * fd: the TAP lives in the test's network namespace, which this thread is not in), then sleeps in
 * poll(2) on the two queues' notify eventfds, a stop eventfd and the back-end's `pollRequests()`,
 * rebuilt after every round. A notification runs `processQueue`, a readable TAP `onPoll`; when either
 * returns true the worker writes the interrupt eventfd.
 */
import { VirtioMmioState } from "../../devices/virtio/mmio-transport.ts";
import { NET_RX_FRAMES, NET_TX_FRAMES, NetBackend } from "../../devices/virtio/net.ts";
import { SplitQueue } from "../../devices/virtio/queue.ts";
import { Tap } from "../../devices/virtio/tap.ts";
import { libc, POLLFD_EVENTS, POLLFD_FD, POLLFD_REVENTS, POLLFD_SIZE, POLLIN } from "../../ffi/libc.ts";
import { GuestMemory, type RegionDescriptor } from "../../src/memory/guest-memory.ts";
import { EventFd } from "../../src/sys/eventfd.ts";

declare const self: Worker;

export interface NetWorkerStart {
  readonly state: SharedArrayBuffer;
  readonly regions: RegionDescriptor[];
  readonly tapName: string;
  readonly tapFd: number;
  readonly mac: string;
  readonly queueSize: number;
  /** One notify eventfd per queue (0 receive, 1 transmit). */
  readonly notifyFds: number[];
  readonly irqFd: number;
  readonly stopFd: number;
}

/** The queues' eventfds, the stop eventfd and the TAP. */
const MAX_POLL_FDS = 8;

self.onmessage = (event: MessageEvent<NetWorkerStart>) => {
  const start = event.data;
  const memory = GuestMemory.attach(start.regions);
  const state = new VirtioMmioState(start.state);
  const net = new NetBackend(Tap.fromFd(start.tapName, start.tapFd), {
    mac: start.mac,
    queueSize: start.queueSize,
  });
  const queues = [0, 1].map((q) => new SplitQueue(state, q, memory));
  const notify = start.notifyFds.map((fd) => EventFd.from(fd));
  const irq = EventFd.from(start.irqFd);
  const pollfds = new Uint8Array(POLLFD_SIZE * MAX_POLL_FDS);
  const view = new DataView(pollfds.buffer);
  self.postMessage({ kind: "ready" });
  for (;;) {
    const fixed = [...start.notifyFds, start.stopFd].map((fd) => ({ fd, events: POLLIN }));
    const all = [...fixed, ...net.pollRequests()];
    all.forEach((r, i) => {
      view.setInt32(i * POLLFD_SIZE + POLLFD_FD, r.fd, true);
      view.setInt16(i * POLLFD_SIZE + POLLFD_EVENTS, r.events, true);
      view.setInt16(i * POLLFD_SIZE + POLLFD_REVENTS, 0, true);
    });
    libc.poll(pollfds, all.length, -1); // the stop eventfd is in the set: the test always ends this wait
    const revents = (i: number) => view.getInt16(i * POLLFD_SIZE + POLLFD_REVENTS, true);
    if (revents(fixed.length - 1) !== 0) break;
    let raise = false;
    for (let q = 0; q < 2; q++) {
      if (revents(q) === 0) continue;
      notify[q]!.read();
      raise = net.processQueue(queues[q]!, memory) || raise;
    }
    for (let i = fixed.length; i < all.length; i++) {
      const r = revents(i);
      if (r !== 0) raise = net.onPoll(all[i]!.fd, r, queues, memory) || raise;
    }
    if (raise) irq.write();
  }
  // The TAP stays open: the test thread opened it and closes it.
  self.postMessage({
    kind: "stopped",
    txFrames: net.counter(NET_TX_FRAMES),
    rxFrames: net.counter(NET_RX_FRAMES),
  });
};
