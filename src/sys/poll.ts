/**
 * poll(2) over a fixed set of fds: the one place a device worker sleeps. Built once per worker (the
 * pollfd array is reused, nothing is allocated per wait).
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

export class PollSet {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;

  /** Waits for POLLIN on each of `fds` (in this order; `ready(i)` answers by position). */
  constructor(readonly fds: readonly number[]) {
    this.bytes = new Uint8Array(POLLFD_SIZE * fds.length);
    this.view = new DataView(this.bytes.buffer);
    fds.forEach((fd, i) => {
      this.view.setInt32(i * POLLFD_SIZE + POLLFD_FD, fd, true);
      this.view.setInt16(i * POLLFD_SIZE + POLLFD_EVENTS, POLLIN, true);
    });
  }

  /**
   * Sleeps until an fd is readable or `timeoutMs` passes (-1: no bound; the caller's control eventfd
   * is in the set, so PAUSE and KILL always end the wait). Returns how many fds are ready; 0 on
   * timeout or EINTR.
   */
  wait(timeoutMs: number): number {
    const n = libc.poll(this.bytes, this.fds.length, timeoutMs);
    if (n >= 0) return n;
    const e = errno();
    if (e === EINTR) return 0;
    throw new LibcError("poll", e);
  }

  /** The revents of the fd at `index` after the last wait (POLLIN, POLLERR, POLLHUP, POLLNVAL bits). */
  revents(index: number): number {
    return this.view.getInt16(index * POLLFD_SIZE + POLLFD_REVENTS, true);
  }

  /** True when the fd at `index` was readable after the last wait. */
  ready(index: number): boolean {
    return (this.revents(index) & POLLIN) !== 0;
  }
}
