/**
 * A dummy device back-end for the device-worker tests, and its shared words. It serves one "queue": a
 * counter the test publishes requests to (PUBLISHED) and the back-end consumes (CONSUMED), notified
 * through an eventfd. When HOLD is set, each request waits in the middle (IN_REQUEST = 1) until the
 * test opens GATE, bounded by GATE_BOUND_MS, so a test can pause or time out a back-end mid-request.
 *
 * Threads: `dummyBackendState` and the word indexes are the test's; the worker entry is
 * dummy-backend-worker.ts.
 */
export const DUMMY = { PUBLISHED: 0, CONSUMED: 1, IN_REQUEST: 2, GATE: 3, HOLD: 4, WORDS: 5 } as const;
/** A held request gives up waiting for the gate after this long (a test that forgets the gate still ends). */
export const GATE_BOUND_MS = 10_000;

export interface DummyBackendInit {
  readonly state: SharedArrayBuffer;
  readonly queueFd: number;
}

export function dummyBackendState(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(DUMMY.WORDS * Int32Array.BYTES_PER_ELEMENT));
}

/** The worker entry's URL, for DeviceBackend.entry. */
export const DUMMY_BACKEND_ENTRY = new URL("./dummy-backend-worker.ts", import.meta.url).href;
