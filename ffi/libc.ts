/**
 * libc through bun:ffi: the only way bunvmm talks to the kernel.
 *
 * Every symbol is declared once here with fixed integer arguments (x86_64 passes variadic `ioctl` and
 * `open` arguments in the same registers). No policy lives here: callers read `errno()` in the very next
 * statement after a call that returned -1.
 *
 * Threads: safe from any thread (each Worker dlopens its own handle; `errno` is thread-local).
 */
import { CString, dlopen, FFIType, ptr, read } from "bun:ffi";

const lib = dlopen("libc.so.6", {
  open: { args: [FFIType.ptr, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  read: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  write: { args: [FFIType.i32, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
  mmap: {
    args: [FFIType.u64, FFIType.u64, FFIType.i32, FFIType.i32, FFIType.i32, FFIType.i64],
    returns: FFIType.u64,
  },
  munmap: { args: [FFIType.u64, FFIType.u64], returns: FFIType.i32 },
  madvise: { args: [FFIType.u64, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  pthread_self: { args: [], returns: FFIType.u64 },
  pthread_kill: { args: [FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  pthread_sigmask: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  sigtimedwait: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  eventfd: { args: [FFIType.u32, FFIType.i32], returns: FFIType.i32 },
  poll: { args: [FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
  getpid: { args: [], returns: FFIType.i32 },
  sigaction: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  dlsym: { args: [FFIType.u64, FFIType.cstring], returns: FFIType.u64 },
  gettid: { args: [], returns: FFIType.i32 },
  sched_yield: { args: [], returns: FFIType.i32 },
});

export const libc = lib.symbols;

/** The calling thread's errno; read it in the statement right after the failing call. */
export function errno(): number {
  const p = lib.symbols.__errno_location();
  return p === null ? 0 : read.i32(p, 0);
}

/** open(2) flags and mmap(2) constants we use (values from <fcntl.h> and <sys/mman.h>, x86_64). */
export const O_RDONLY = 0o0;
export const O_RDWR = 0o2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
/** madvise(2): back this range with transparent huge pages where the kernel can. */
export const MADV_HUGEPAGE = 14;
/** mmap(2) returns (void *)-1 on failure. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
/** sizeof(sigset_t) in glibc (1024 bits); the kernel's own sigset is 8 bytes. */
export const GLIBC_SIGSET_BYTES = 128;
export const KERNEL_SIGSET_BYTES = 8;

/** eventfd(2) flags (<sys/eventfd.h>). */
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
/** poll(2) events (<poll.h>). */
export const POLLIN = 0x001;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;
/** struct pollfd: int fd; short events; short revents. */
export const POLLFD_SIZE = 8;
export const POLLFD_FD = 0;
export const POLLFD_EVENTS = 4;
export const POLLFD_REVENTS = 6;

/** dlsym(RTLD_DEFAULT, ...): search the global symbol scope. */
export const RTLD_DEFAULT = 0;
/** sigaction(2) flags (<signal.h>, x86_64). */
export const SA_RESTART = 0x1000_0000;

/** A NUL-terminated copy of `s` whose address can be handed to libc. */
export function cString(s: string): Uint8Array {
  return new TextEncoder().encode(`${s}\0`);
}

/** Address of a typed array's bytes, for an FFI argument. */
export function addressOf(view: Parameters<typeof ptr>[0]): number {
  return ptr(view);
}

export { CString };
