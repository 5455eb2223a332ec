/**
 * Why a kernel cannot be booted: a bad or unsupported image, or one that does not fit the VM. `reason`
 * is one sentence without the file's name, so the builder can wrap it in its own error (PayloadError
 * names the path: `payload.kernel = "…": <reason>`).
 */

import { BunvmmError } from "../../errors.ts";
import { MIB } from "../../numbers.ts";
export class LinuxBootError extends BunvmmError {
  override readonly name = "LinuxBootError";
  constructor(readonly reason: string) {
    super("input", reason);
  }
}

/** The RAM size that covers `[0, end)`, in whole MiB, for "give the VM at least N MiB". */
export function mibToCover(end: number): number {
  return Math.ceil(end / MIB);
}
