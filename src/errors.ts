/**
 * The one base of every error bunvmm expects a user to meet: bad input, a host that lacks something, a
 * refused operation, a guest or a device that misbehaved. The CLI and the REST API print `message` as
 * one line for any `BunvmmError` (no list of class names); anything else is a bug and gets a full report.
 *
 * `kind` says whose problem it is, so exit codes and HTTP statuses follow from it; `cause` (the standard
 * Error option) keeps the underlying failure, e.g. the error a worker threw.
 */

/** Whose problem an error is. */
export type ErrorKind =
  /** The user's input: a config value, a path, an API body, a snapshot directory. */
  | "input"
  /** The host: KVM, a syscall, a file the user named but the host refused. */
  | "host"
  /** An operation the VM's current state or rules refuse (pause while paused, resize while pending). */
  | "refused"
  /** A bounded wait ran out (a vCPU or device worker did not acknowledge in time). */
  | "timeout"
  /** The guest did something that stopped it (triple fault, an instruction KVM cannot run). */
  | "guest";

export class BunvmmError extends Error {
  override name = "BunvmmError";
  constructor(
    readonly kind: ErrorKind,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** True for the errors whose message is the whole story for a user (one line, no stack trace). */
export function isBunvmmError(e: unknown): e is BunvmmError {
  return e instanceof BunvmmError;
}
