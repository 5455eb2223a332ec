/**
 * The device-worker side of the parkable-worker lifecycle: the loop a device back-end (a virtio queue
 * server, say) plugs into. It sleeps in poll(2) on the back-end's queue eventfds and its control
 * eventfd (plus, when the back-end has host fds of its own, a TAP or sockets, whatever its
 * `pollRequests()` asks for before each sleep), serves the queues that were notified and the fds that
 * became ready, and obeys CMD in its control block like a vCPU does:
 * PAUSE parks it (after the request in flight is finished: `process` returns only between requests),
 * resume re-checks every queue (a notification may have landed while it was parked), KILL ends it.
 *
 * Wake-ups cannot be lost ([drain-then-read]): the VMM changes CMD by compare-and-swap and then writes the
 * control eventfd; this loop first drains the eventfd, then reads CMD, then sleeps in poll. A CMD change
 * after the read is followed by a write after the drain, so poll returns at once. Reading CMD before
 * draining would let a change land in between and its write be drained away: the worker would sleep
 * through a pause (model/pause.pml shows it with FIX_DRAIN_THEN_READ undone). While parked it waits on
 * CMD with Atomics.wait, which the VMM notifies on every change ([wake-on-pause-kill]); KILL is tested
 * first ([kill-dominates]). The worker never waits for the VMM or a vCPU.
 *
 * Threads: one device worker's thread. `serveDeviceWorker` is what a back-end's worker entry module
 * calls (its entry is named in src/vmm/worker-entries.ts).
 */
import { EventFd } from "../src/sys/eventfd.ts";
import { type PollInterest, PollSet } from "../src/sys/poll.ts";
import {
  CMD,
  ControlBlock,
  epochOf,
  KILL,
  PARKED,
  PAUSE,
  PAUSES,
  RUNNING,
} from "../src/vcpu/control-block.ts";

/** What a back-end gives the loop. */
export interface DeviceBackendHandler {
  /** The queue eventfds to poll (fds the VMM created); `process` is told a queue by its position here. */
  readonly queueFds: readonly number[];
  /**
   * Serves queue `queue` until nothing is available. Returns only between requests: whatever it started
   * is finished (or held in the back-end's state) when it returns, so the loop may park right after.
   */
  process(queue: number): void;
  /**
   * The back-end's own fds to wait on besides the queues, and for what (POLLIN, POLLOUT); asked before
   * every sleep, since the set changes with buffers and credit. None when absent.
   */
  pollRequests?(): readonly PollInterest[];
  /**
   * One of `pollRequests()`'s fds is ready (`revents` from poll). Like `process`, returns only between
   * requests (a frame or a packet is moved whole or not at all).
   */
  onPoll?(fd: number, revents: number): void;
  /** Releases what the back-end holds in this worker (buffers it mapped); called once, after KILL. */
  close?(): void;
}

/** The one message a device worker receives. */
export interface DeviceWorkerInit {
  /** "device virtio-blk0": how the VMM names it in errors. */
  readonly label: string;
  /** The control block's buffer (src/vcpu/control-block.ts layout). */
  readonly control: SharedArrayBuffer;
  /** The control eventfd the VMM writes after every CMD change. */
  readonly controlFd: number;
  /** The back-end's own start data (DeviceType.backend's `init`). */
  readonly init: unknown;
}

/** What a device worker posts, once, right before it goes idle. */
export type DeviceWorkerMessage = {
  type: "outcome";
  outcome: { kind: "killed" } | { kind: "crashed"; summary: string };
};

export class DeviceWorkerLoop {
  private readonly controlFd: EventFd;
  private readonly queues: EventFd[];
  private readonly poll: PollSet;

  constructor(
    private readonly control: ControlBlock,
    controlFd: number,
    private readonly backend: DeviceBackendHandler,
  ) {
    this.controlFd = EventFd.from(controlFd);
    this.queues = backend.queueFds.map((fd) => EventFd.from(fd));
    this.poll = new PollSet([controlFd, ...backend.queueFds]);
  }

  /** Serves until KILL; the last store is EXITED (acknowledgeExit). */
  run(): void {
    // Check every queue before the first sleep: a notification may predate the worker (after a restore,
    // a request the guest posted before the snapshot that the device had not popped).
    let recheck = true;
    for (;;) {
      this.controlFd.read(); // [drain-then-read]: drain first ...
      const cmd = this.control.cmd; // ... then read CMD
      const epoch = epochOf(cmd);
      if (cmd & KILL) {
        this.control.acknowledgeExit(epoch);
        return;
      }
      if (cmd & PAUSE) {
        // Nothing is in flight here: `process` returned between requests.
        if (this.control.runState !== PARKED || this.control.ack !== epoch) {
          this.control.acknowledge(PARKED, epoch);
          this.control.count(PAUSES);
        }
        Atomics.wait(this.control.words, CMD, cmd); // returns at once if CMD already moved
        recheck = true;
        continue;
      }
      if (this.control.runState !== RUNNING || this.control.ack !== epoch)
        this.control.acknowledge(RUNNING, epoch);
      if (recheck) {
        recheck = false;
        for (let q = 0; q < this.queues.length; q++) this.serve(q);
        continue; // CMD may have changed while serving
      }
      // Asked anew each round: serving a queue or an fd changes what the back-end waits for.
      const extra = this.backend.pollRequests?.() ?? [];
      this.poll.wait(-1, extra); // the control eventfd is in the set: PAUSE and KILL end the wait
      for (let q = 0; q < this.queues.length; q++) if (this.poll.ready(q + 1)) this.serve(q);
      const first = this.queues.length + 1;
      for (let i = 0; i < extra.length; i++) {
        const revents = this.poll.revents(first + i);
        if (revents !== 0) this.backend.onPoll?.(extra[i]!.fd, revents);
      }
    }
  }

  private serve(queue: number): void {
    this.queues[queue]!.read();
    this.backend.process(queue);
  }
}

declare const self: Worker;

/**
 * A back-end worker's whole entry module: `serveDeviceWorker((init) => backend)`. Builds the back-end
 * from the init message, runs the loop, and posts the outcome.
 */
export function serveDeviceWorker(makeBackend: (init: unknown) => DeviceBackendHandler): void {
  self.onmessage = (event: MessageEvent<DeviceWorkerInit>) => {
    const { label, control: buffer, controlFd, init } = event.data;
    const control = new ControlBlock(buffer);
    let message: DeviceWorkerMessage;
    try {
      const backend = makeBackend(init);
      new DeviceWorkerLoop(control, controlFd, backend).run();
      backend.close?.();
      message = { type: "outcome", outcome: { kind: "killed" } };
    } catch (e) {
      control.acknowledgeExit(epochOf(control.cmd));
      message = {
        type: "outcome",
        outcome: { kind: "crashed", summary: `${label} failed: ${(e as Error).message}` },
      };
    }
    self.postMessage(message);
  };
}
