/**
 * A libc call that is not an ioctl failed (eventfd, poll, open of a host file, fallocate, ...): names the
 * call and errno in words, e.g. `eventfd: too many open files (EMFILE)`. ioctls fail with KvmError.
 */
import { describeErrno } from "../../ffi/errno-names.ts";
import { errno as currentErrno } from "../../ffi/libc.ts";
import { BunvmmError } from "../errors.ts";

export class LibcError extends BunvmmError {
  override name = "LibcError";
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super("host", `${call}: ${describeErrno(errno)}`);
  }
}

/** Throws LibcError for a -1 return, reading errno first; returns the value otherwise. */
export function checkLibc(call: string, result: number | bigint): number {
  if (result === -1 || result === -1n) throw new LibcError(call, currentErrno());
  return Number(result);
}
