/**
 * libc's file calls for disk images, through bun:ffi: positioned reads and writes straight into guest
 * RAM (a typed-array view of it is passed as the buffer, no copy), fsync/fdatasync, fallocate for
 * discard and write-zeroes, and fcntl with open file description (OFD) locks.
 *
 * Kept apart from ffi/libc.ts so each file declares one concern. Fixed integer arguments are used for
 * the variadic `fcntl` and `open`, as ffi/libc.ts does for `ioctl` (x86_64 passes them in the same
 * registers). Callers read `errno()` (ffi/libc.ts) in the statement right after a call returning -1.
 *
 * Threads: safe from any thread (each Worker dlopens its own handle).
 */
import { dlopen, FFIType } from "bun:ffi";

const lib = dlopen("libc.so.6", {
  open: { args: [FFIType.ptr, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  pread: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i64], returns: FFIType.i64 },
  pwrite: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i64], returns: FFIType.i64 },
  fsync: { args: [FFIType.i32], returns: FFIType.i32 },
  fdatasync: { args: [FFIType.i32], returns: FFIType.i32 },
  fallocate: { args: [FFIType.i32, FFIType.i32, FFIType.i64, FFIType.i64], returns: FFIType.i32 },
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
});

export const libcFile = lib.symbols;

/** open(2) flags (<fcntl.h>, x86_64) beyond those in ffi/libc.ts. */
export const O_WRONLY = 0o1;
export const O_CREAT = 0o100;
/** Bypass the page cache: buffers, offsets and lengths must be aligned to the logical block size. */
export const O_DIRECT = 0o40000;

/** fallocate(2) modes (<linux/falloc.h>). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** fcntl(2) commands for open file description locks, and lock types (<fcntl.h>). */
export const F_OFD_GETLK = 36;
export const F_OFD_SETLK = 37;
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;
/** l_whence: offsets from the start of the file. */
export const SEEK_SET = 0;

/**
 * struct flock (x86_64): l_type and l_whence are shorts, l_start and l_len are off_t, l_pid an int.
 * OFD locks need l_pid = 0 on input; F_OFD_GETLK reports -1 there for a conflicting OFD lock.
 */
export const FLOCK_SIZE = 32;
export const FLOCK_L_TYPE = 0;
export const FLOCK_L_WHENCE = 2;
export const FLOCK_L_START = 8;
export const FLOCK_L_LEN = 16;
export const FLOCK_L_PID = 24;

/** Constants above checked against the C headers by test/devices/virtio/libc-file.test.ts. */
export const FILE_CHECKED_CONSTANTS: Readonly<Record<string, number>> = {
  O_WRONLY,
  O_CREAT,
  O_DIRECT,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
  F_OFD_GETLK,
  F_OFD_SETLK,
  F_RDLCK,
  F_WRLCK,
  F_UNLCK,
  SEEK_SET,
  "sizeof(struct flock)": FLOCK_SIZE,
  "offsetof(struct flock, l_type)": FLOCK_L_TYPE,
  "offsetof(struct flock, l_whence)": FLOCK_L_WHENCE,
  "offsetof(struct flock, l_start)": FLOCK_L_START,
  "offsetof(struct flock, l_len)": FLOCK_L_LEN,
  "offsetof(struct flock, l_pid)": FLOCK_L_PID,
};

/** A struct flock covering the whole file (l_start 0, l_len 0 = to the end) with lock type `type`. */
export function wholeFileFlock(type: number): Uint8Array {
  const buf = new Uint8Array(FLOCK_SIZE);
  const v = new DataView(buf.buffer);
  v.setInt16(FLOCK_L_TYPE, type, true);
  v.setInt16(FLOCK_L_WHENCE, SEEK_SET, true);
  return buf;
}
