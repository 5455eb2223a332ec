/**
 * An eventfd(2): a 64-bit counter in the kernel that one side adds to (`write`) and the other drains
 * (`read`), and that poll(2) reports readable while it is non-zero. KVM signals through them
 * (KVM_IOEVENTFD: a guest write to a doorbell adds 1 without an exit to userspace; KVM_IRQFD: a write
 * raises a GSI), and device workers wake on them.
 *
 * Threads: any. The fd is a plain number, so a worker can use one created by the VMM thread
 * (`EventFd.from(fd)`); only the creator closes it. Always non-blocking: `read` of a zero counter
 * returns 0n instead of sleeping, so the only place a thread sleeps is poll(2).
 */
import { EAGAIN } from "../../ffi/errno-names.ts";
import { EFD_CLOEXEC, EFD_NONBLOCK, errno, libc } from "../../ffi/libc.ts";
import { checkLibc, LibcError } from "./libc-error.ts";

/** An eventfd counter is 8 bytes. */
const COUNTER_BYTES = 8;

export class EventFd {
  private readonly buf = new BigUint64Array(1);
  private closed = false;

  private constructor(
    readonly fd: number,
    private readonly owned: boolean,
  ) {}

  /** A new non-blocking, close-on-exec eventfd with counter 0. */
  static create(): EventFd {
    return new EventFd(checkLibc("eventfd", libc.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), true);
  }

  /** A view of an eventfd another thread created (it stays that thread's to close). */
  static from(fd: number): EventFd {
    return new EventFd(fd, false);
  }

  /** Adds `n` (default 1) to the counter, waking pollers. */
  write(n = 1n): void {
    this.buf[0] = n;
    const r = libc.write(this.fd, this.buf, COUNTER_BYTES);
    if (Number(r) !== COUNTER_BYTES) throw new LibcError(`write eventfd ${this.fd}`, errno());
  }

  /** Returns the counter and resets it to 0; 0n when it was already 0 (never blocks). */
  read(): bigint {
    const r = libc.read(this.fd, this.buf, COUNTER_BYTES);
    if (Number(r) === COUNTER_BYTES) return this.buf[0]!;
    const e = errno();
    if (e === EAGAIN) return 0n;
    throw new LibcError(`read eventfd ${this.fd}`, e);
  }

  close(): void {
    if (this.closed || !this.owned) return;
    this.closed = true;
    libc.close(this.fd);
  }
}
