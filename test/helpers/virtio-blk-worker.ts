/**
 * A device worker for the cross-thread test: the shape the VMM's device worker will have. It attaches
 * guest RAM and the transport's shared state, opens (and locks) the image itself, then sleeps in poll(2)
 * on the queue's notify eventfd and a stop eventfd; each notification runs the block back-end and, when
 * the driver wants one, writes the interrupt eventfd.
 */
import { BlockBackend } from "../../devices/virtio/block.ts";
import { VirtioMmioState } from "../../devices/virtio/mmio-transport.ts";
import { SplitQueue } from "../../devices/virtio/queue.ts";
import { GuestMemory, type RegionDescriptor } from "../../src/memory/guest-memory.ts";
import { EventFd } from "../../src/sys/eventfd.ts";
import { PollSet } from "../../src/sys/poll.ts";

declare const self: Worker;

export interface BlkWorkerStart {
  readonly state: SharedArrayBuffer;
  readonly regions: RegionDescriptor[];
  readonly path: string;
  readonly notifyFd: number;
  readonly irqFd: number;
  readonly stopFd: number;
}

self.onmessage = (event: MessageEvent<BlkWorkerStart>) => {
  const start = event.data;
  const memory = GuestMemory.attach(start.regions);
  const disk = BlockBackend.open({ path: start.path, queueSize: 128 });
  const queue = new SplitQueue(new VirtioMmioState(start.state), 0, memory);
  const notify = EventFd.from(start.notifyFd);
  const irq = EventFd.from(start.irqFd);
  const poll = new PollSet([start.notifyFd, start.stopFd]);
  self.postMessage({ kind: "ready" });
  let batches = 0;
  for (;;) {
    poll.wait(-1); // the stop eventfd is in the set: the test always ends this wait
    if (poll.ready(1)) break;
    if (poll.ready(0)) {
      notify.read();
      batches++;
      if (disk.processQueue(queue, memory)) irq.write();
    }
  }
  disk.close();
  self.postMessage({ kind: "stopped", batches });
};
