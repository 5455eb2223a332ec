/**
 * What the virtio stress tests (virtio-blk-storm, virtio-hostile) share: whether this bunvmm takes
 * `[[disks]]` at all, a watchdog around lifecycle operations, disk images, and reading a device's
 * counters from `vm.counters().devices[id]`.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { ConfigError, parseConfig, type Vm } from "bunvmm";

/** Watchdog: far above the VMM's own 1 s deadlines, so it only fires on a real hang. */
export const WATCHDOG_MS = 5000;

/**
 * Why these tests cannot run here, or null: only when the config schema rejects the `disks` key itself
 * (a bunvmm without virtio-blk wired in). Any other answer means disks are supported.
 */
export function disksUnsupported(): string | null {
  try {
    parseConfig({ disks: [] });
    return null;
  } catch (e) {
    if (e instanceof ConfigError && e.key === "disks" && /unknown key/.test(e.message))
      return `this bunvmm's config schema rejects [[disks]] (virtio-blk is not wired into the VM yet): ${e.message}`;
    return null;
  }
}

/** Runs one lifecycle operation under the watchdog; a hang fails the test naming the operation and the vCPUs. */
export async function guarded<T>(vm: Vm, what: string, op: () => Promise<T>): Promise<T> {
  let timer: Timer | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `watchdog: ${what} did not finish within ${WATCHDOG_MS} ms; state ${vm.state}, vCPUs ${vm.vcpuStates().join(",")}`,
          ),
        ),
      WATCHDOG_MS,
    );
  });
  try {
    return await Promise.race([op(), watchdog]);
  } finally {
    clearTimeout(timer);
  }
}

/** Writes `bytes` random bytes to `path` and returns them. */
export function randomImage(path: string, bytes: number): Uint8Array {
  const data = new Uint8Array(bytes);
  const chunk = 65536; // getRandomValues fills at most 64 KiB at a time
  for (let at = 0; at < bytes; at += chunk)
    crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + chunk)));
  writeFileSync(path, data);
  return data;
}

/** SHA-256 of bytes [from, to) of a file, hex. */
export function fileRangeHash(path: string, from: number, to: number): string {
  return createHash("sha256").update(readFileSync(path).subarray(from, to)).digest("hex");
}

/**
 * The device's counters as `name → number`, flattened (nested objects give dotted names), or undefined
 * when this bunvmm has no `devices[id]` in `vm.counters()`.
 */
export function deviceCounters(vm: Vm, id: string): Map<string, number> | undefined {
  const all = vm.counters() as unknown as { devices?: Record<string, unknown> };
  const mine = all.devices?.[id];
  if (mine === undefined || mine === null || typeof mine !== "object") return undefined;
  const out = new Map<string, number>();
  const walk = (o: object, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === "number" || typeof v === "bigint") out.set(prefix + k, Number(v));
      else if (v && typeof v === "object") walk(v, `${prefix}${k}.`);
    }
  };
  walk(mine, "");
  return out;
}

/** The sum of the counters whose names match `pattern`. */
export function sumMatching(counters: Map<string, number>, pattern: RegExp): number {
  let sum = 0;
  for (const [k, v] of counters) if (pattern.test(k)) sum += v;
  return sum;
}

/** Counters as "a=1 b=2", for messages. */
export function showCounters(counters: Map<string, number> | undefined): string {
  return counters
    ? [...counters].map(([k, v]) => `${k}=${v}`).join(" ")
    : "(no devices[id] in vm.counters())";
}
