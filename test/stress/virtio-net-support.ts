/**
 * What the network stress tests (virtio-net-storm, vsock-storm, virtio-net-hostile) share: whether this
 * bunvmm takes `[[net]]` and `[vsock]` at all, and a VM run as `bunvmm run --api-socket` in a child
 * process, inside a network namespace when it has a TAP, driven over the REST API (pause, resume,
 * info, counters) while its serial output (the guest's report lines) is read as it arrives.
 *
 * The child runs inside the namespace (`ip netns exec`), so the TAP it opens by name is the one the
 * test made there, and nothing is configured outside it. Unix socket paths (the API, the vsock) are
 * file-system names, reachable from the test's own namespace. Threads: the test's thread.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, parseConfig } from "bunvmm";
import { waitForApi } from "../helpers/api-client.ts";
import { SOURCE_CLI } from "../helpers/cli.ts";
import { waitUntil } from "../helpers/guests.ts";
import type { Netns } from "../helpers/netns.ts";

/** Bound on one REST request: far above the VMM's own 1 s deadlines, so it only fires on a real hang. */
export const REQUEST_MS = 5000;
/** Bound on the child's whole life. */
const CHILD_LIFE_MS = 600_000;

/**
 * Why these tests cannot run here, or null: only when the config schema rejects the key itself (a
 * bunvmm without virtio-net or vsock wired into the VM). Any other answer means the key is supported.
 */
export function keyUnsupported(key: "net" | "vsock"): string | null {
  try {
    parseConfig(key === "net" ? { net: [] } : { vsock: {} });
    return null;
  } catch (e) {
    if (e instanceof ConfigError && e.key === key && /unknown key/.test(e.message))
      return `this bunvmm's config schema rejects ${key === "net" ? "[[net]]" : "[vsock]"} (not wired into the VM yet): ${e.message}`;
    return null;
  }
}

export interface ChildVm {
  /** Serial lines so far (the guest's reports). */
  readonly lines: string[];
  /** bunvmm's stderr so far. */
  stderr(): string;
  readonly exited: Promise<number>;
  /** One REST request; resolves with the status and the parsed body (if any), rejects at REQUEST_MS. */
  api(method: "GET" | "PUT", endpoint: string): Promise<{ status: number; body: unknown }>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  state(): Promise<string>;
  /** `vm.counters`: device or vCPU name -> counter name -> value. */
  counters(): Promise<Record<string, Record<string, number>>>;
  /** Waits for a serial line matching `pattern`; throws with the output so far at the deadline. */
  waitLine(pattern: RegExp, what: string, timeoutMs: number): Promise<RegExpMatchArray>;
  /** SIGTERM (the VM shuts down), SIGKILL if it has not gone after the grace period; removes the files. */
  stop(): Promise<void>;
}

/**
 * Boots `toml` (a config body; the API socket is added here) with `bunvmm run`, inside `ns` when given.
 * Resolves once the API answers.
 */
export async function startChildVm(
  toml: string,
  ns: Netns | null,
  dir = mkdtempSync(join(tmpdir(), "bunvmm-net-")),
) {
  const config = join(dir, "vm.toml");
  const socket = join(dir, "api.sock");
  writeFileSync(config, toml);
  const argv = [...SOURCE_CLI, "run", "--log-level", "warn", "--api-socket", socket, config];
  const proc = Bun.spawn(ns ? ["ip", "netns", "exec", ns.name, ...argv] : argv, {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const life = setTimeout(() => proc.kill("SIGKILL"), CHILD_LIFE_MS); // deadline on the whole run
  const lines: string[] = [];
  let stderr = "";
  const decoder = new TextDecoder();
  void (async () => {
    let partial = "";
    for await (const chunk of proc.stdout) {
      const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
      partial = parts.pop() ?? "";
      lines.push(...parts);
    }
  })();
  void (async () => {
    for await (const chunk of proc.stderr) stderr += new TextDecoder().decode(chunk);
  })();
  const exited = proc.exited.then((code) => {
    clearTimeout(life);
    return code;
  });
  const api = async (method: "GET" | "PUT", endpoint: string) => {
    const r = await fetch(`http://localhost/api/v1/${endpoint}`, {
      unix: socket,
      method,
      signal: AbortSignal.timeout(REQUEST_MS),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  const expectOk = async (endpoint: string) => {
    const r = await api("PUT", endpoint);
    if (r.status !== 204) throw new Error(`${endpoint} answered ${r.status}: ${JSON.stringify(r.body)}`);
  };
  const vm: ChildVm = {
    lines,
    stderr: () => stderr,
    exited,
    api,
    pause: () => expectOk("vm.pause"),
    resume: () => expectOk("vm.resume"),
    state: async () => ((await api("GET", "vm.info")).body as { state: string }).state,
    counters: async () => (await api("GET", "vm.counters")).body as Record<string, Record<string, number>>,
    async waitLine(pattern, what, timeoutMs) {
      let found: RegExpMatchArray | null = null;
      await waitUntil(
        () => {
          for (const l of lines) {
            found = pattern.exec(l);
            if (found) return true;
          }
          if (proc.exitCode !== null)
            throw new Error(
              `bunvmm exited (${proc.exitCode}) before ${what}: ${stderr.trim()}\n${lines.join("\n")}`,
            );
          return false;
        },
        `${what}; serial so far:\n${lines.slice(-20).join("\n")}\nstderr: ${stderr.trim()}`,
        timeoutMs,
      );
      return found!;
    },
    async stop() {
      proc.kill("SIGTERM");
      const grace = setTimeout(() => proc.kill("SIGKILL"), REQUEST_MS);
      await exited;
      clearTimeout(grace);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const early = exited.then((code) => {
    throw new Error(`bunvmm run exited (${code}) before its API answered: ${stderr.trim()}`);
  });
  early.catch(() => undefined); // only the race below reads it
  try {
    await Promise.race([waitForApi(socket), early]);
  } catch (e) {
    await vm.stop();
    throw e;
  }
  return vm;
}

/** A persistent TAP named `name` in `ns`, up, with `address` (CIDR) on it; IPv6 off (no stray frames). */
export function makeTap(ns: Netns, name: string, address: string): void {
  ns.run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
  ns.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
  ns.run(["ip", "tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr"]);
  ns.run(["ip", "addr", "add", address, "dev", name]);
  ns.run(["ip", "link", "set", name, "up"]);
}

/** The sum of one device's counters whose names match `pattern`. */
export function sumCounters(c: Record<string, number> | undefined, pattern: RegExp): number {
  return Object.entries(c ?? {})
    .filter(([k, v]) => pattern.test(k) && typeof v === "number")
    .reduce((a, [, v]) => a + v, 0);
}

/**
 * Runs one step of a storm (pause, gap, resume) on a guest that powers off right after its report. A
 * step that fails is forgiven only when that is why: the child then exits and the report line shows up
 * (both within REQUEST_MS); the storm is over (false). Any other failure is rethrown.
 */
export async function stormStep(
  vm: ChildVm,
  finished: () => boolean,
  step: () => Promise<void>,
): Promise<boolean> {
  try {
    await step();
    return true;
  } catch (e) {
    const exited = await Promise.race([
      vm.exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), REQUEST_MS)), // bounded wait for the exit
    ]);
    if (exited) {
      try {
        await waitUntil(finished, "the guest's report after its power-off", REQUEST_MS);
        return false;
      } catch {
        // no report: the failure was not the guest finishing
      }
    }
    throw e;
  }
}
