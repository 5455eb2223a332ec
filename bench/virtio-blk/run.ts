// bench/virtio-blk: 4 KiB virtio-blk requests (sequential and random, reads and writes, one in flight
// and many), for bunvmm next to QEMU 7.2 microvm, the same guest and the same image for everyone.
//
//   bun bench/virtio-blk/run.ts [--reps=3] [--requests=2000] [--depth=32] [--image-mib=64]
//
// Progress and failed runs (with the command and the tail of its stderr) go to stderr; stdout gets
// the tables and, as its last line, one JSON object with the figures. A contender that cannot run
// (bunvmm without `[[disks]]`, QEMU not installed) shows why in its column and null in the JSON.
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cGuestElf } from "../../test/helpers/c-guest.ts";
import { haveTool } from "../tools.ts";
import { runChild } from "./child.ts";
import { type Contender, type ContenderKey, contenders } from "./contenders.ts";

const arg = (name: string, dflt: number): number => {
  const a = Bun.argv.find((s) => s.startsWith(`--${name}=`));
  const v = a ? Number(a.slice(name.length + 3)) : dflt;
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : dflt;
};
const REPS = arg("reps", 3);
const REQUESTS = arg("requests", 2000);
/** bench-blk.c's queue has 128 descriptors, three per request: at most 42 in flight. */
const MAX_DEPTH = 42;
const DEPTH = Math.min(arg("depth", 32), MAX_DEPTH);
const IMAGE_MIB = arg("image-mib", 64);
/** One run: eight phases of REQUESTS requests at ~0.1-0.3 ms each here, plus boot; far above that. */
const RUN_DEADLINE_MS = 120_000 + REQUESTS * 8 * 2;
const BLOCK_BYTES = 4096;
const MIB = 1 << 20;
/** The image is filled with this block, repeated, so that every block is allocated on the host. */
const FILL_BYTES = MIB;

/** The guest's phases (test/guests/virtio/bench-blk.c), in its order. */
const PHASES = [
  "read-seq-qd1",
  "read-rand-qd1",
  "write-seq-qd1",
  "write-rand-qd1",
  "read-seq-qdN",
  "read-rand-qdN",
  "write-seq-qdN",
  "write-rand-qdN",
] as const;
type Phase = (typeof PHASES)[number];

/** A phase's span in one run, ms (from its #B line to its #E line as they reached stdout). */
type RunSpans = Record<Phase, number>;
interface Column {
  c: Contender;
  spans: RunSpans[];
  error?: string;
}

const failures: string[] = [];
const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const tail = (s: string, lines = 6) => s.trimEnd().split("\n").slice(-lines).join("\n");
/** The reason a run failed, in one line: the last stderr line that says something, or the exit. */
const firstWords = (stderr: string, fallback: string) =>
  stderr
    .trim()
    .split("\n")
    .map((l) => l.replace(/^\[\w+\]\s*(\[bunvmm\]\s*)?/, "").trim())
    .filter(Boolean)
    .at(-1) ?? fallback;

class RunFailed extends Error {}

/** One run of one contender: every phase must have both markers, no failed request, DONE 0, the power-off status. */
async function once(c: Contender, elf: string, image: string): Promise<RunSpans> {
  const cmd = c.command(elf, image);
  const r = await runChild(cmd, RUN_DEADLINE_MS);
  const begin = new Map<string, number>();
  const spans: Partial<RunSpans> = {};
  let failedRequests = 0;
  let done: string | null = null;
  for (const { ms, text } of r.lines) {
    const b = /^#B (\S+)$/.exec(text);
    const e = /^#E (\S+) (\d+) (\d+)$/.exec(text);
    if (b) begin.set(b[1]!, ms);
    else if (e && begin.has(e[1]!)) {
      spans[e[1] as Phase] = ms - begin.get(e[1]!)!;
      failedRequests += Number(e[3]);
    } else if (text.startsWith("DONE ")) done = text.slice(5);
  }
  const missing = PHASES.filter((p) => spans[p] === undefined);
  const why = r.timedOut
    ? `timed out after ${RUN_DEADLINE_MS} ms`
    : missing.length
      ? `${firstWords(r.stderr, `no phase markers (exit ${r.exitCode})`)}${
          r.lines.length ? `; guest said: ${r.lines.map((l) => l.text).join(" | ")}`.slice(0, 300) : ""
        }`
      : failedRequests
        ? `${failedRequests} requests failed`
        : done !== "0"
          ? `the guest ended with DONE ${done}`
          : r.exitCode !== c.powerOffCode
            ? `exit code ${r.exitCode}, expected ${c.powerOffCode}`
            : null;
  if (why) {
    failures.push(`${c.label}: ${why}\n  ${cmd.join(" ")}\n${tail(r.stderr)}`);
    throw new RunFailed(why);
  }
  return spans as RunSpans;
}

/** Writes the image: IMAGE_MIB MiB of one random MiB repeated, so every block exists on the host. */
function makeImage(dir: string): string {
  const path = join(dir, "disk.img");
  const fill = crypto.getRandomValues(new Uint8Array(FILL_BYTES));
  const fd = openSync(path, "w");
  try {
    for (let i = 0; i < IMAGE_MIB; i++) writeSync(fd, fill);
  } finally {
    closeSync(fd);
  }
  return path;
}

// ---- output ----

const us = (spanMs: number) => (spanMs * 1000) / REQUESTS;
const iops = (spanMs: number) => REQUESTS / (spanMs / 1000);
const mibs = (spanMs: number) => (iops(spanMs) * BLOCK_BYTES) / MIB;
const phaseLabel = (p: Phase) => p.replace("qdN", `qd${DEPTH}`);
const jsonPhase = (p: Phase) => phaseLabel(p).replaceAll("-", "_");

function medianSpan(col: Column | undefined, p: Phase): number | null {
  return col && !col.error && col.spans.length ? median(col.spans.map((s) => s[p])) : null;
}

/** "median (min-max)" of µs per request over the runs, or "—". */
function usCell(col: Column | undefined, p: Phase): string {
  const m = medianSpan(col, p);
  if (m === null || !col) return "—";
  const xs = col.spans.map((s) => us(s[p]));
  const range = xs.length > 1 ? ` (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})` : "";
  return `${us(m).toFixed(1)}${range}`;
}

/** The 1-minute load average: other work on the machine moves every figure. */
function loadAverage(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

function render(lines: string[][]): string {
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const fmt = (l: string[]) =>
    l.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join("  ");
  const out = lines.map(fmt);
  out.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return out.join("\n");
}

/** The ratio of two medians, or "—". */
function ratio(a: number | null, b: number | null): string {
  return a !== null && b ? `${(a / b).toFixed(2)}×` : "—";
}

function tables(cols: Map<ContenderKey, Column>, order: Contender[]): string {
  const head = (c: Contender) => {
    const col = cols.get(c.key);
    return c.unavailable ? `${c.label}: ${c.unavailable}` : col?.error ? `${c.label}: failed` : c.label;
  };
  const lat: string[][] = [
    [
      "µs per request: median (min-max)",
      ...order.map(head),
      "bunvmm / QEMU default",
      "direct / QEMU cache=none",
    ],
  ];
  const thr: string[][] = [["IOPS | MiB/s", ...order.map(head)]];
  for (const p of PHASES) {
    const m = (k: ContenderKey) => medianSpan(cols.get(k), p);
    lat.push([
      phaseLabel(p),
      ...order.map((c) => usCell(cols.get(c.key), p)),
      ratio(m("bunvmm"), m("qemu")),
      ratio(m("bunvmm_direct"), m("qemu_none")),
    ]);
    thr.push([
      phaseLabel(p),
      ...order.map((c) => {
        const s = m(c.key);
        return s === null ? "—" : `${iops(s).toFixed(0)} | ${mibs(s).toFixed(1)}`;
      }),
    ]);
  }
  const errors = order
    .map((c) => cols.get(c.key))
    .filter((col): col is Column => !!col?.error)
    .map((col) => `* ${col.c.label} failed: ${col.error}`);
  return [render(lat), "", render(thr), ...(errors.length ? ["", ...errors] : [])].join("\n");
}

const FOOTNOTE = () => `
Each figure is the median of ${REPS} runs; the contenders take turns, one run at a time. Every run boots
  test/guests/virtio/bench-blk.c (a polling virtio-blk driver, 32-bit C, VERSION_1 + FLUSH, no interrupts:
  avail.flags NO_INTERRUPT) on a ${IMAGE_MIB} MiB raw image filled with data. Each phase is ${REQUESTS}
  4 KiB requests (sequential from sector 0, or random 4 KiB blocks from a fixed LCG sequence), with 1
  or ${DEPTH} in flight; the guest prints a line before and after it, the harness timestamps both lines
  as they reach the VMM's stdout. µs per request = span / ${REQUESTS} (at qd1 a request's latency, deeper
  the inverse of throughput); IOPS = ${REQUESTS} / span; MiB/s = IOPS × 4 KiB.
bunvmm: [[disks]] path, direct = false (page cache) or true (O_DIRECT). QEMU: -M microvm -accel kvm
  -global virtio-mmio.force-legacy=false -drive ...,cache=none (O_DIRECT) or the default cache
  (writeback: page cache) -device virtio-blk-device. No flush is sent, so writes through the page
  cache end in the host's page cache for bunvmm (direct = false) and QEMU's default alike.
The guest's own code is emulated on this machine's nested KVM (~2 M instructions/s), the same for
  every contender: it sets the floor under every figure.`;

function figures(cols: Map<ContenderKey, Column>) {
  const span = (k: ContenderKey, p: Phase) => medianSpan(cols.get(k), p);
  const r = (x: number | null, digits: number) => (x === null ? null : Number(x.toFixed(digits)));
  const f = (k: ContenderKey, p: Phase, fn: (s: number) => number, digits: number) => {
    const s = span(k, p);
    return r(s === null ? null : fn(s), digits);
  };
  const rat = (a: ContenderKey, b: ContenderKey, p: Phase) => {
    const x = span(a, p);
    const y = span(b, p);
    return x !== null && y ? r(x / y, 2) : null;
  };
  const out: Record<string, number | null> = {
    read_4k_us: f("bunvmm", "read-rand-qd1", us, 1),
    qemu_read_4k_us: f("qemu", "read-rand-qd1", us, 1),
    qemu_none_read_4k_us: f("qemu_none", "read-rand-qd1", us, 1),
    read_ratio: rat("bunvmm", "qemu", "read-rand-qd1"),
    read_ratio_none: rat("bunvmm_direct", "qemu_none", "read-rand-qd1"),
    write_4k_us: f("bunvmm", "write-rand-qd1", us, 1),
    qemu_write_4k_us: f("qemu", "write-rand-qd1", us, 1),
    qemu_none_write_4k_us: f("qemu_none", "write-rand-qd1", us, 1),
    write_ratio: rat("bunvmm", "qemu", "write-rand-qd1"),
    write_ratio_none: rat("bunvmm_direct", "qemu_none", "write-rand-qd1"),
  };
  for (const k of ["bunvmm", "bunvmm_direct", "qemu", "qemu_none"] as const) {
    for (const p of PHASES) {
      out[`${k}_${jsonPhase(p)}_us`] = f(k, p, us, 1);
      out[`${k}_${jsonPhase(p)}_iops`] = f(k, p, iops, 0);
      out[`${k}_${jsonPhase(p)}_mibs`] = f(k, p, mibs, 2);
    }
  }
  for (const p of PHASES) {
    out[`ratio_${jsonPhase(p)}`] = rat("bunvmm", "qemu", p);
    out[`ratio_none_${jsonPhase(p)}`] = rat("bunvmm_direct", "qemu_none", p);
  }
  return { ...out, requests: REQUESTS, depth: DEPTH, reps: REPS };
}

async function main(): Promise<number> {
  const missing = ["gcc", "ld", "objcopy"].filter((t) => !haveTool(t));
  if (missing.length) {
    console.error(`bench: missing ${missing.join(", ")} (apt-get install -y gcc binutils)`);
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-bench-blk-"));
  try {
    const started = performance.now();
    const loadBefore = loadAverage();
    const elf = cGuestElf(["bench-blk.c", "bench-probe.c"], { BENCH_REQUESTS: REQUESTS, BENCH_DEPTH: DEPTH });
    const image = makeImage(dir);
    const order = contenders(dir);
    const cols = new Map<ContenderKey, Column>(order.map((c) => [c.key, { c, spans: [] }]));
    for (const c of order) if (c.unavailable) progress(`${c.label}: skipped (${c.unavailable})`);
    for (let rep = 1; rep <= REPS; rep++) {
      for (const c of order) {
        const col = cols.get(c.key)!;
        if (c.unavailable || col.error) continue;
        progress(`${rep}/${REPS} ${c.label}`);
        try {
          col.spans.push(await once(c, elf, image));
        } catch (e) {
          col.error = e instanceof RunFailed ? e.message : String(e);
        }
      }
    }
    progress(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    for (const f of failures) process.stderr.write(`failed: ${f}\n`);
    console.log(
      `load average: ${loadBefore} before, ${loadAverage()} after; the run took ${((performance.now() - started) / 1000).toFixed(0)} s`,
    );
    console.log(tables(cols, order));
    console.log(FOOTNOTE().trimStart());
    console.log(JSON.stringify(figures(cols)));
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
