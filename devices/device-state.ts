/**
 * Saved device state: a layout version and bytes. Most devices keep their whole state in
 * SharedArrayBuffers, so `saveBuffers` copies those buffers one after the other and `restoreBuffers`
 * copies them back after checking the version and every length.
 *
 * Threads: VMM thread, while no worker runs the device (paused or not yet started).
 */
import { BunvmmError } from "../src/errors.ts";

/** What `DeviceType.save` returns and `restore` takes. */
export interface DeviceState {
  /** The layout of `bytes`; a device refuses a version it does not know. */
  readonly version: number;
  readonly bytes: Uint8Array;
}

/** Copies `buffers` back to back. */
export function saveBuffers(version: number, buffers: readonly SharedArrayBuffer[]): DeviceState {
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const b of buffers) {
    bytes.set(new Uint8Array(b), at);
    at += b.byteLength;
  }
  return { version, bytes };
}

/** Copies `state` back into `buffers` (same order and sizes as `saveBuffers` took them). */
export function restoreBuffers(
  device: string,
  version: number,
  state: DeviceState,
  buffers: readonly SharedArrayBuffer[],
): void {
  if (state.version !== version) {
    throw new BunvmmError(
      "input",
      `cannot restore device ${device}: saved state version ${state.version}, this build reads version ${version}`,
    );
  }
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  if (state.bytes.length !== total) {
    throw new BunvmmError(
      "input",
      `cannot restore device ${device}: saved state is ${state.bytes.length} bytes, expected ${total}`,
    );
  }
  let at = 0;
  for (const b of buffers) {
    new Uint8Array(b).set(state.bytes.subarray(at, at + b.byteLength));
    at += b.byteLength;
  }
}
