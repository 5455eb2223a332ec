// bunvmm's two ways in: the `Vm` library in this process (the figure the table leads with), and the
// REST API of a `bunvmm run --api-socket` child over its Unix socket (the way a QMP client drives QEMU).
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Vm } from "../../src/index.ts";
import { createLogger } from "../../src/vmm/logger.ts";
import { collect, stop, track } from "./children.ts";
import { sleep } from "./cycles.ts";
import { COUNTERS, READY_DEADLINE_MS, type Session, waitCounting } from "./session.ts";

export const REPO = join(import.meta.dir, "..", "..");
const BUN = join(REPO, "node_modules", ".bin", "bun");
const CLI = join(REPO, "src", "cli", "main.ts");

const RAM = "64M";
const RAM_BYTES = 64 << 20;
/** The raw payload's load address (docs/raw-payload.md): where the image's bytes show in guest RAM. */
const RAW_LOAD_ADDRESS = 0x10000;
/** One REST request (the Vm's own deadline on each vCPU wait is 1000 ms). */
const REQUEST_DEADLINE_MS = 10_000;

/** In-process: Vm.create, boot, and wait until every vCPU counts. */
export async function librarySession(image: string, vcpus: number): Promise<Session> {
  // Default options but a silent serial and warnings only: the Vm's deadline on each vCPU wait stays
  // the library's 1000 ms.
  const vm = await Vm.create(
    {
      cpus: { boot_vcpus: vcpus, max_vcpus: vcpus },
      memory: { size: RAM },
      payload: { kernel: image, format: "raw" },
      serial: { mode: "off" },
    },
    { serial: { kind: "none" }, logger: createLogger("warn") },
  );
  try {
    await vm.boot();
    const counters = async () => Array.from({ length: vcpus }, (_, i) => vm.memory.readU32(COUNTERS + 4 * i));
    await waitCounting(counters, vcpus, READY_DEADLINE_MS, "bunvmm library");
    return {
      pid: null,
      pause: () => vm.pause(),
      resume: () => vm.resume(),
      counters,
      pausesSeen: async () => vm.counters().vcpus.map((c) => c.pauses),
      close: async () => void (await vm.shutdown()),
    };
  } catch (e) {
    await vm.shutdown();
    throw e;
  }
}

/**
 * Where guest RAM may start in `pid`: its private anonymous mappings, adjacent ones joined into spans
 * (guest RAM shows as two or more mappings, its low part advised off huge pages in
 * src/memory/guest-memory.ts, and the kernel may merge a part with a neighbouring anonymous mapping).
 * RAM starts at a mapping's start or ends at a mapping's end; every such base whose RAM-sized range
 * lies inside one span is a candidate.
 */
function ramCandidates(pid: number): number[] {
  const maps: Array<[number, number]> = [];
  for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0\s*$/.exec(line);
    if (m) maps.push([parseInt(m[1]!, 16), parseInt(m[2]!, 16)]);
  }
  const spans: Array<[number, number]> = [];
  for (const [start, end] of maps) {
    const last = spans.at(-1);
    if (last && last[1] === start) last[1] = end;
    else spans.push([start, end]);
  }
  const inSpan = (base: number) => spans.some(([s, e]) => base >= s && base + RAM_BYTES <= e);
  return [...new Set(maps.flatMap(([start, end]) => [start, end - RAM_BYTES]))].filter(inSpan);
}

/**
 * Reads a child's guest RAM through /proc/PID/mem (root): the candidate base (ramCandidates) whose
 * bytes at the raw load address are the guest image.
 */
function childRam(
  pid: number,
  image: Uint8Array,
): { read: (gpa: number) => number; close: () => void } | null {
  const probe = image.subarray(0, 64);
  const buf = new Uint8Array(probe.length);
  const fd = openSync(`/proc/${pid}/mem`, "r");
  for (const base of ramCandidates(pid)) {
    try {
      readSync(fd, buf, 0, buf.length, base + RAW_LOAD_ADDRESS);
    } catch {
      continue; // a page that cannot be read
    }
    if (!buf.every((b, i) => b === probe[i])) continue;
    const word = new Uint8Array(4);
    const view = new DataView(word.buffer);
    return {
      read: (gpa) => {
        readSync(fd, word, 0, 4, base + gpa);
        return view.getUint32(0, true);
      },
      close: () => closeSync(fd),
    };
  }
  closeSync(fd);
  return null;
}

async function request(socket: string, method: "GET" | "PUT", endpoint: string): Promise<string> {
  const r = await fetch(`http://localhost/api/v1/${endpoint}`, {
    unix: socket,
    method,
    signal: AbortSignal.timeout(REQUEST_DEADLINE_MS),
  });
  const body = await r.text();
  if (r.status !== (method === "PUT" ? 204 : 200))
    throw new Error(`${method} ${endpoint}: ${r.status} ${body.slice(0, 200)}`);
  return body;
}

async function ping(socket: string): Promise<boolean> {
  try {
    const r = await fetch("http://localhost/api/v1/vmm.ping", {
      unix: socket,
      signal: AbortSignal.timeout(2000),
    });
    await r.text();
    return r.status === 200;
  } catch {
    return false;
  }
}

/**
 * `bun src/cli/main.ts run --api-socket SOCK CONFIG.toml` as a child; pause and resume are PUT
 * vm.pause and PUT vm.resume with Bun's fetch over the socket, each timed from the request to the 204.
 */
export async function restSession(dir: string, image: string, vcpus: number): Promise<Session> {
  const tag = `${vcpus}-${Math.random().toString(36).slice(2, 8)}`;
  const toml = join(dir, `api-${tag}.toml`);
  const socket = join(dir, `api-${tag}.sock`);
  writeFileSync(
    toml,
    [
      "[cpus]",
      `boot_vcpus = ${vcpus}`,
      `max_vcpus = ${vcpus}`,
      "[memory]",
      `size = "${RAM}"`,
      "[payload]",
      `kernel = ${JSON.stringify(image)}`,
      'format = "raw"',
      "[serial]",
      'mode = "off"',
      "",
    ].join("\n"),
  );
  const cmd = [BUN, CLI, "run", "--log-level", "warn", "--api-socket", socket, toml];
  const proc = track(Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
  const stderr = collect(proc.stderr);
  collect(proc.stdout);
  const fail = (why: string) =>
    new Error(`${why}: ${cmd.join(" ")}\n${stderr().trimEnd().split("\n").slice(-6).join("\n")}`);
  let ram: ReturnType<typeof childRam> = null;
  const close = async () => {
    await request(socket, "PUT", "vm.shutdown").catch(() => undefined);
    await stop(proc, 3000, 2000);
    ram?.close();
  };
  try {
    const deadline = performance.now() + READY_DEADLINE_MS;
    const bytes = new Uint8Array(readFileSync(image));
    for (;;) {
      if (await ping(socket)) {
        ram = childRam(proc.pid, bytes);
        if (ram) break;
      }
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw fail(`exited (${proc.exitCode ?? proc.signalCode})`);
      if (performance.now() > deadline)
        throw fail(`API or guest RAM not found within ${READY_DEADLINE_MS} ms`);
      await sleep(10); // bounded by the deadline above
    }
    const { read } = ram!;
    const counters = async () => Array.from({ length: vcpus }, (_, i) => read(COUNTERS + 4 * i));
    await waitCounting(counters, vcpus, READY_DEADLINE_MS, "bunvmm REST");
    return {
      pid: proc.pid,
      pause: () => request(socket, "PUT", "vm.pause"),
      resume: () => request(socket, "PUT", "vm.resume"),
      counters,
      pausesSeen: async () => {
        const c = JSON.parse(await request(socket, "GET", "vm.counters")) as Record<
          string,
          { pauses?: number }
        >;
        return Object.keys(c)
          .filter((k) => /^vcpu\d+$/.test(k))
          .map((k) => c[k]!.pauses ?? -1);
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
