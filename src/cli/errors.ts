/**
 * Exit codes a script can rely on. Which errors are the user's to fix (one line, no stack trace) is
 * decided by their base class alone: every BunvmmError (src/errors.ts); anything else is a bunvmm bug.
 */

/** Exit codes of `bunvmm`. */
export const EXIT_OK = 0;
/** Bad input, a host problem, or a refused operation. */
export const EXIT_ERROR = 1;
/** The guest crashed (triple fault, an instruction KVM cannot run, a failed entry). */
export const EXIT_GUEST_CRASH = 2;

/**
 * Stdout was closed before all of the guest's output was written (`bunvmm run | head -1`); the VM was
 * shut down. 128 + SIGPIPE (13): the status a shell reports for a tool that SIGPIPE ended.
 */
export const EXIT_STDOUT_CLOSED = 141;
