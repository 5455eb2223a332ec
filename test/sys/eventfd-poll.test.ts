/** eventfd and poll through bun:ffi, on the real kernel. */
import { expect, test } from "bun:test";
import { POLLIN } from "../../ffi/libc.ts";
import { POLLOUT } from "../../ffi/libc-net.ts";
import { isBunvmmError } from "../../src/errors.ts";
import { EventFd } from "../../src/sys/eventfd.ts";
import { LibcError } from "../../src/sys/libc-error.ts";
import { PollSet } from "../../src/sys/poll.ts";

test("an eventfd counts writes, reads reset it, and an empty read returns 0 without blocking", () => {
  const e = EventFd.create();
  try {
    expect(e.read()).toBe(0n);
    e.write();
    e.write(4n);
    expect(e.read()).toBe(5n);
    expect(e.read()).toBe(0n);
  } finally {
    e.close();
  }
});

test("poll reports exactly the eventfds that were written, and times out when none was", () => {
  const a = EventFd.create();
  const b = EventFd.create();
  try {
    const set = new PollSet([a.fd, b.fd]);
    expect(set.wait(0)).toBe(0);
    b.write();
    expect(set.wait(1000)).toBe(1);
    expect(set.ready(0)).toBe(false);
    expect(set.ready(1)).toBe(true);
    expect(set.revents(1) & POLLIN).toBe(POLLIN);
    expect(b.read()).toBe(1n);
    expect(set.wait(0)).toBe(0);
  } finally {
    a.close();
    b.close();
  }
});

test("per-wait extra fds follow the fixed ones, each with its own events (POLLOUT too), for that wait only", () => {
  const fixed = EventFd.create();
  const extras = Array.from({ length: 5 }, () => EventFd.create());
  try {
    const set = new PollSet([fixed.fd]);
    // An eventfd is always writable; none is readable yet.
    expect(set.wait(0, [{ fd: extras[0]!.fd, events: POLLOUT }])).toBe(1);
    expect(set.revents(1) & POLLOUT).toBe(POLLOUT);
    expect(set.ready(0)).toBe(false);
    // More extras than the set had room for: it grows; only the written one is readable.
    extras[3]!.write();
    const wanted = extras.map((e) => ({ fd: e.fd, events: POLLIN }));
    expect(set.wait(1000, wanted)).toBe(1);
    expect(wanted.map((_, i) => set.ready(1 + i))).toEqual([false, false, false, true, false]);
    // Without extras the next wait has the fixed fds only, and positions past them report nothing.
    fixed.write();
    expect(set.wait(1000)).toBe(1);
    expect(set.ready(0)).toBe(true);
    expect(set.revents(4)).toBe(0);
  } finally {
    fixed.close();
    for (const e of extras) e.close();
  }
});

test("a failing libc call names the call and errno in words, as a BunvmmError of kind host", () => {
  const e = EventFd.from(-1);
  let caught: unknown;
  try {
    e.write();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(LibcError);
  expect(isBunvmmError(caught)).toBe(true);
  expect((caught as LibcError).kind).toBe("host");
  expect((caught as Error).message).toBe("write eventfd -1: bad file descriptor (EBADF)");
});
