/**
 * poll(2) over a fixed set of fds plus, per wait, a changing set of extra ones: the one place a device
 * worker sleeps. The fixed fds (queue eventfds, the control eventfd) wait for POLLIN; the extra ones
 * (a back-end's TAP or sockets) each with their own events (POLLIN, POLLOUT), given anew to every
 * `wait` because a back-end's interest changes with its buffers and credit. The pollfd array is reused
 * and only grows (to the largest set seen), so a steady worker allocates nothing per wait.
 *
 * Threads: the calling thread only.
 */
import { EINTR } from "../../ffi/errno-names.ts";
import {
  errno,
  libc,
  POLLFD_EVENTS,
  POLLFD_FD,
  POLLFD_REVENTS,
  POLLFD_SIZE,
  POLLIN,
} from "../../ffi/libc.ts";
import { LibcError } from "./libc-error.ts";

/** An fd to wait on for one wait, and for what (POLLIN, POLLOUT, or both). */
export interface PollInterest {
  readonly fd: number;
  readonly events: number;
}

export class PollSet {
  private bytes: Uint8Array;
  private view: DataView;
  /** How many entries the last wait had (fixed fds, then that wait's extra ones). */
  private count: number;

  /** Waits for POLLIN on each of `fds` (in this order; `ready(i)` answers by position). */
  constructor(readonly fds: readonly number[]) {
    this.bytes = new Uint8Array(POLLFD_SIZE * Math.max(1, fds.length));
    this.view = new DataView(this.bytes.buffer);
    this.count = fds.length;
    for (let i = 0; i < fds.length; i++) this.set(i, fds[i]!, POLLIN);
  }

  private set(index: number, fd: number, events: number): void {
    this.view.setInt32(index * POLLFD_SIZE + POLLFD_FD, fd, true);
    this.view.setInt16(index * POLLFD_SIZE + POLLFD_EVENTS, events, true);
    this.view.setInt16(index * POLLFD_SIZE + POLLFD_REVENTS, 0, true);
  }

  /**
   * Sleeps until an fd is ready or `timeoutMs` passes (-1: no bound; the caller's control eventfd
   * is in the set, so PAUSE and KILL always end the wait). `extra` fds follow the fixed ones, at
   * positions `fds.length + i`, for this wait only. Returns how many fds are ready; 0 on timeout or
   * EINTR.
   */
  wait(timeoutMs: number, extra: readonly PollInterest[] = []): number {
    const total = this.fds.length + extra.length;
    if (this.bytes.length < total * POLLFD_SIZE) {
      const grown = new Uint8Array(total * POLLFD_SIZE);
      grown.set(this.bytes);
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    for (let i = 0; i < extra.length; i++) this.set(this.fds.length + i, extra[i]!.fd, extra[i]!.events);
    this.count = total;
    const n = libc.poll(this.bytes, total, timeoutMs);
    if (n >= 0) return n;
    const e = errno();
    if (e === EINTR) return 0;
    throw new LibcError("poll", e);
  }

  /**
   * The revents of the fd at `index` after the last wait (POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL
   * bits); 0 for a position the last wait did not have.
   */
  revents(index: number): number {
    if (index >= this.count) return 0;
    return this.view.getInt16(index * POLLFD_SIZE + POLLFD_REVENTS, true);
  }

  /** True when the fd at `index` was readable after the last wait. */
  ready(index: number): boolean {
    return (this.revents(index) & POLLIN) !== 0;
  }
}
