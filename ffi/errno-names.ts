/**
 * Linux errno values (asm-generic/errno-base.h and errno.h, x86_64) with the words we print.
 * Checked against <errno.h> by test/ffi/kvm-structs.test.ts.
 */
export const ERRNO: Readonly<Record<string, readonly [number, string]>> = {
  EPERM: [1, "operation not permitted"],
  ENOENT: [2, "no such file or directory"],
  ESRCH: [3, "no such process"],
  EINTR: [4, "interrupted system call"],
  EIO: [5, "input/output error"],
  ENXIO: [6, "no such device or address"],
  E2BIG: [7, "argument list too long"],
  ENOEXEC: [8, "exec format error"],
  EBADF: [9, "bad file descriptor"],
  ECHILD: [10, "no child processes"],
  EAGAIN: [11, "resource temporarily unavailable"],
  ENOMEM: [12, "cannot allocate memory"],
  EACCES: [13, "permission denied"],
  EFAULT: [14, "bad address"],
  EBUSY: [16, "device or resource busy"],
  EEXIST: [17, "file exists"],
  EXDEV: [18, "invalid cross-device link"],
  ENODEV: [19, "no such device"],
  ENOTDIR: [20, "not a directory"],
  EISDIR: [21, "is a directory"],
  EINVAL: [22, "invalid argument"],
  ENFILE: [23, "too many open files in system"],
  EMFILE: [24, "too many open files"],
  ENOTTY: [25, "inappropriate ioctl for device"],
  EFBIG: [27, "file too large"],
  ENOSPC: [28, "no space left on device"],
  ESPIPE: [29, "illegal seek"],
  EROFS: [30, "read-only file system"],
  EPIPE: [32, "broken pipe"],
  ERANGE: [34, "numerical result out of range"],
  EDEADLK: [35, "resource deadlock avoided"],
  ENAMETOOLONG: [36, "file name too long"],
  ENOSYS: [38, "function not implemented"],
  ELOOP: [40, "too many levels of symbolic links"],
  ENOTSUP: [95, "operation not supported"],
  EADDRINUSE: [98, "address already in use"],
  ECONNREFUSED: [111, "connection refused"],
  EHWPOISON: [133, "memory page has hardware error"],
};

const byNumber = new Map<number, readonly [string, string]>(
  Object.entries(ERRNO).map(([name, [num, words]]) => [num, [name, words]] as const),
);

/** "permission denied (EACCES)": the words a user reads, then the symbol they can search for. */
export function describeErrno(errno: number): string {
  const hit = byNumber.get(errno);
  return hit ? `${hit[1]} (${hit[0]})` : `errno ${errno}`;
}

/** Symbolic name of an errno value, or undefined when we do not list it. */
export function errnoName(errno: number): string | undefined {
  return byNumber.get(errno)?.[0];
}

export const EINTR = ERRNO.EINTR![0];
export const EAGAIN = ERRNO.EAGAIN![0];
export const E2BIG = ERRNO.E2BIG![0];
export const EINVAL = ERRNO.EINVAL![0];
export const EBUSY = ERRNO.EBUSY![0];
