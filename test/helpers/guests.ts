/**
 * Test guests: assembled from test/guests/*.S with binutils on first use (cached per source and
 * defines for the test run), written to a temp file a VM config can name.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assembleRawGuest } from "../../src/demo/assemble.ts";

const GUEST_DIR = join(import.meta.dir, "..", "guests");
const outDir = mkdtempSync(join(tmpdir(), "bunvmm-test-guests-"));
const cache = new Map<string, string>();

/** Path of the raw image of test/guests/NAME.S built with `defines`. */
export function guestImage(name: string, defines: Record<string, number> = {}): string {
  const key = `${name}:${JSON.stringify(defines)}`;
  let path = cache.get(key);
  if (!path) {
    path = join(outDir, `${name}-${cache.size}.bin`);
    writeFileSync(path, assembleRawGuest(join(GUEST_DIR, `${name}.S`), defines));
    cache.set(key, path);
  }
  return path;
}

/** A config object for a raw test guest, serial kept in memory only. */
export function rawGuestConfig(
  name: string,
  opts: { boot?: number; max?: number; memory?: string; defines?: Record<string, number> } = {},
) {
  return {
    cpus: { boot_vcpus: opts.boot ?? 1, max_vcpus: opts.max ?? opts.boot ?? 1 },
    memory: { size: opts.memory ?? "16M" },
    payload: { kernel: guestImage(name, opts.defines), format: "raw" },
    serial: { mode: "off" },
  };
}

/** Polls `condition` until true; throws naming `what` at the deadline. No fixed sleeps. */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1)); // poll interval, bounded by the deadline above
  }
}

/**
 * Lets `ms` pass, to observe that something does NOT change (a paused counter). Never used to wait
 * for something to happen: that is waitUntil's job, with a deadline.
 */
export function observationWindow(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms)); // a fixed observation period, bounded by ms
}
