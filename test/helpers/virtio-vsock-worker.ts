/**
 * A device worker for the cross-thread vsock test, in the shape the VMM's device worker will have: it
 * attaches guest RAM and the transport's shared state, builds the vsock back-end (which listens on the
 * Unix socket), then sleeps in poll(2) on the three queues' notify eventfds, a stop eventfd and
 * whatever the back-end asks for (`pollRequests()`, rebuilt after every round since it changes with
 * credit and buffers). A notification runs `processQueue`, a ready host fd `onPoll`; when either
 * returns true the worker writes the interrupt eventfd.
 */
import { VirtioMmioState } from "../../devices/virtio/mmio-transport.ts";
import { SplitQueue } from "../../devices/virtio/queue.ts";
import { VsockBackend } from "../../devices/virtio/vsock.ts";
import { libc, POLLFD_EVENTS, POLLFD_FD, POLLFD_REVENTS, POLLFD_SIZE, POLLIN } from "../../ffi/libc.ts";
import { GuestMemory, type RegionDescriptor } from "../../src/memory/guest-memory.ts";
import { EventFd } from "../../src/sys/eventfd.ts";

declare const self: Worker;

export interface VsockWorkerStart {
  readonly state: SharedArrayBuffer;
  readonly regions: RegionDescriptor[];
  readonly cid: number;
  readonly socket: string;
  readonly queueSize: number;
  /** One notify eventfd per queue (0 rx, 1 tx, 2 event). */
  readonly notifyFds: number[];
  readonly irqFd: number;
  readonly stopFd: number;
}

/** Most fds one round polls: the queues, the stop fd and the back-end's host sockets. */
const MAX_POLL_FDS = 4096;

self.onmessage = (event: MessageEvent<VsockWorkerStart>) => {
  const start = event.data;
  const memory = GuestMemory.attach(start.regions);
  const state = new VirtioMmioState(start.state);
  const vsock = new VsockBackend({ cid: start.cid, socket: start.socket, queueSize: start.queueSize });
  const queues = [0, 1, 2].map((q) => new SplitQueue(state, q, memory));
  const notify = start.notifyFds.map((fd) => EventFd.from(fd));
  const irq = EventFd.from(start.irqFd);
  const pollfds = new Uint8Array(POLLFD_SIZE * MAX_POLL_FDS);
  const view = new DataView(pollfds.buffer);
  self.postMessage({ kind: "ready" });
  let rounds = 0;
  for (;;) {
    const fixed = [...start.notifyFds, start.stopFd].map((fd) => ({ fd, events: POLLIN }));
    const all = [...fixed, ...vsock.pollRequests()].slice(0, MAX_POLL_FDS);
    all.forEach((r, i) => {
      view.setInt32(i * POLLFD_SIZE + POLLFD_FD, r.fd, true);
      view.setInt16(i * POLLFD_SIZE + POLLFD_EVENTS, r.events, true);
      view.setInt16(i * POLLFD_SIZE + POLLFD_REVENTS, 0, true);
    });
    libc.poll(pollfds, all.length, -1); // the stop eventfd is in the set: the test always ends this wait
    rounds++;
    const revents = (i: number) => view.getInt16(i * POLLFD_SIZE + POLLFD_REVENTS, true);
    if (revents(fixed.length - 1) !== 0) break;
    let raise = false;
    for (let q = 0; q < 3; q++) {
      if (revents(q) === 0) continue;
      notify[q]!.read();
      raise = vsock.processQueue(queues[q]!, memory, queues) || raise;
    }
    for (let i = fixed.length; i < all.length; i++) {
      const r = revents(i);
      if (r !== 0) raise = vsock.onPoll(all[i]!.fd, r, queues, memory) || raise;
    }
    if (raise) irq.write();
  }
  vsock.close();
  self.postMessage({ kind: "stopped", rounds });
};
