/**
 * Why a snapshot could not be written or restored, in one line that names the file and what is wrong
 * with it ("snapshot /x/memory.bin: checksum mismatch (expected ..., found ...)"). A refused restore has
 * changed nothing, on disk or elsewhere.
 */
import { BunvmmError } from "../errors.ts";

export class SnapshotError extends BunvmmError {
  override readonly name = "SnapshotError";
  constructor(message: string, options?: ErrorOptions) {
    super("input", message, options);
  }
}
