/**
 * Which errors are the user's to fix (one line, no stack trace) and which are bunvmm bugs (full
 * report). Exit codes a script can rely on.
 */

import { isBunvmmError } from "../errors.ts";

/** Exit codes of `bunvmm`. */
export const EXIT_OK = 0;
/** Bad input, a host problem, or a refused operation. */
export const EXIT_ERROR = 1;
/** The guest crashed (triple fault, an instruction KVM cannot run, a failed entry). */
export const EXIT_GUEST_CRASH = 2;

/**
 * True for errors whose message is the whole story for a user: every BunvmmError, whatever its class
 * (config, KVM, libc, payload, lifecycle, timeout ...). Anything else is a bunvmm bug.
 */
export function isUserError(e: unknown): e is Error {
  return isBunvmmError(e);
}
