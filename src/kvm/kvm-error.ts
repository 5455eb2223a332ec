/** Errors from the kernel, carrying the ioctl (or syscall) and errno so a user reads both in words. */
import { describeErrno, errnoName } from "../../ffi/errno-names.ts";
import { errno as currentErrno } from "../../ffi/libc.ts";
import { BunvmmError } from "../errors.ts";

/**
 * Hints for failures a user can fix themselves, keyed "CALL:ERRNO_NAME" (CALL is the first word,
 * so "open /dev/kvm" is "open") or ":ERRNO_NAME" for any call.
 */
const HINTS: Readonly<Record<string, string>> = {
  "open:EACCES": "can you open /dev/kvm? (run as root or join the kvm group)",
  "open:ENOENT": "is KVM enabled? (load kvm_intel or kvm_amd)",
  "KVM_CREATE_VM:EACCES": "can you open /dev/kvm?",
  "KVM_CREATE_VCPU:EINVAL": "is the vCPU id above the host's KVM_CAP_MAX_VCPUS?",
  ":ENOMEM": "the host is out of memory",
};

/** A failed ioctl or syscall: `KVM_CREATE_VM: permission denied (EACCES): can you open /dev/kvm?` */
export class KvmError extends BunvmmError {
  override readonly name = "KvmError";
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    const symbol = errnoName(errno) ?? "";
    const hint = HINTS[`${call.split(" ")[0]}:${symbol}`] ?? HINTS[`:${symbol}`];
    super("host", `${call}: ${describeErrno(errno)}${hint ? `: ${hint}` : ""}`);
  }
}

/** Throws KvmError for a -1 return, reading errno first; returns the value otherwise. */
export function check(call: string, result: number | bigint): number {
  if (result === -1 || result === -1n) throw new KvmError(call, currentErrno());
  return Number(result);
}
