/** Bounded waits for the VMM thread: every wait names what it waited for when the bound is hit ([bounded-waits]). */

import { BunvmmError } from "../errors.ts";

/** A wait that ran out of time; `what` says what was awaited. */
export class DeadlineError extends BunvmmError {
  override readonly name = "DeadlineError";
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    detail = "",
  ) {
    super("timeout", `timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${detail}` : ""}`);
  }
}

/** Resolves with the promise's value, or `undefined` once `ms` passed; the timer never outlives it. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: Timer | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
