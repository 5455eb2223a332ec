// bench/exit-cost: the cost of one guest exit (PIO and MMIO), start-up time and
// RSS, for bunvmm next to a minimal C VMM (the floor) and QEMU microvm.
//
//   bun bench/exit-cost/run.ts [--reps=5] [--iterations=100000]
//
// Progress goes to stderr; stdout gets the table and, as its last line, one
// JSON object with the figures.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { haveTool } from "../tools.ts";
import { buildFloor, buildGuest, type Flavour, type GuestName } from "./build.ts";
import { type ChildResult, END_MARKER, runChild, START_MARKER } from "./child.ts";
import {
  binStale,
  bunFloor,
  bunvmm,
  bunvmmBin,
  type Contender,
  type ContenderKey,
  floor,
  qemu,
} from "./contenders.ts";

const arg = (name: string, dflt: number): number => {
  const a = Bun.argv.find((s) => s.startsWith(`--${name}=`));
  const v = a ? Number(a.slice(name.length + 3)) : dflt;
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : dflt;
};
const REPS = arg("reps", 5);
const ITERATIONS = arg("iterations", 100_000);
const LOOP_DEADLINE_MS = 20_000; // per run; 100000 exits take ~1 s here
const IDLE_DEADLINE_MS = 10_000; // per run, start-up and RSS sampling included
const SMP_VCPUS = 8;

type Metric = "pio" | "mmio" | "startup1" | "startup8" | "rss1" | "rss8";
const METRICS: Metric[] = ["pio", "mmio", "startup1", "startup8", "rss1", "rss8"];
/** A measured figure, or why there is none. */
type Cell = { value: number } | { error: string };
type Row = Record<Metric, Cell>;

const failures: string[] = []; // with stderr tails: printed to stderr
const remarks: string[] = []; // printed under the table
const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const tail = (s: string, lines = 6) => s.trimEnd().split("\n").slice(-lines).join("\n");

class RunFailed extends Error {}

/**
 * One run. It must show the start marker; a loop run must also show the end
 * marker and then exit with the power-off status; an idle run must give an RSS.
 */
async function run(c: Contender, image: string, vcpus: number, idle: boolean): Promise<ChildResult> {
  const cmd = c.command(image, vcpus);
  const r = await runChild(cmd, { deadlineMs: idle ? IDLE_DEADLINE_MS : LOOP_DEADLINE_MS, sampleRss: idle });
  const why =
    r.timedOut && (!idle || r.startMs === null)
      ? `timed out after ${r.exitMs.toFixed(0)} ms`
      : r.startMs === null
        ? `no start marker (exit ${r.exitCode})`
        : idle && r.rssKiB === null
          ? "no RSS sample"
          : !idle && r.endMs === null
            ? `no end marker (exit ${r.exitCode})`
            : !idle && r.exitCode !== c.powerOffCode
              ? `exit code ${r.exitCode}, expected ${c.powerOffCode}`
              : null;
  if (why) {
    failures.push(`${c.label}: ${why}: ${cmd.join(" ")}\n${tail(r.stderr)}`);
    throw new RunFailed(why);
  }
  const expected = idle ? START_MARKER : START_MARKER + END_MARKER;
  if (r.stdout !== expected && !remarks.some((n) => n.startsWith(`${c.label}: stdout`))) {
    remarks.push(
      `${c.label}: stdout carried more than the guest's serial bytes: ${JSON.stringify(r.stdout.slice(0, 200))}`,
    );
  }
  return r;
}

type ImageFn = (f: Flavour, g: GuestName, n: number) => string;

/** One figure (or two) of one contender, measured REPS times, interleaved with everyone else's. */
interface Task {
  c: Contender;
  what: string;
  metrics: Metric[];
  /** One repetition: a sample per metric. */
  once: () => Promise<number[]>;
  samples: number[][];
  error?: string;
}

/**
 * One repetition of a loop figure, µs per exit: (end marker − start marker, as
 * seen on stdout) with N iterations, minus the same with 0 iterations, over N.
 */
function loopTask(c: Contender, guest: "pio" | "mmio", image: ImageFn, selfTimed: number[]): Task {
  const once = async () => {
    const span = async (n: number) => {
      const r = await run(c, image(c.flavour, guest, n), 1, false);
      const m = /= ([\d.]+) us\/exit/.exec(r.stderr);
      if (c.key === "floor" && n > 0 && m) selfTimed.push(Number(m[1]));
      return r.endMs! - r.startMs!;
    };
    const zero = await span(0);
    return [(((await span(ITERATIONS)) - zero) * 1000) / ITERATIONS];
  };
  return { c, what: `${guest} loop`, metrics: [guest], once, samples: [] };
}

/** One repetition of the idle guest: [start-up ms, RSS MiB]. */
function idleTask(c: Contender, vcpus: number, image: ImageFn): Task {
  const once = async () => {
    const r = await run(c, image(c.flavour, "idle", 0), vcpus, true);
    return [r.startMs!, r.rssKiB! / 1024];
  };
  const metrics: Metric[] = vcpus === 1 ? ["startup1", "rss1"] : ["startup8", "rss8"];
  return { c, what: `idle, ${vcpus} vCPU(s)`, metrics, once, samples: [] };
}

/**
 * Runs every task REPS times, round-robin (so a burst of load on the host
 * hits all contenders alike), and reduces each to its median.
 */
async function measure(contenders: Contender[], image: ImageFn): Promise<Map<ContenderKey, Row>> {
  const selfTimed = { pio: [] as number[], mmio: [] as number[] };
  const tasks = contenders.flatMap((c) => [
    // the Bun floor runs no guest: it has start-up and RSS only
    ...(c.key === "bun_floor"
      ? []
      : [loopTask(c, "pio", image, selfTimed.pio), loopTask(c, "mmio", image, selfTimed.mmio)]),
    idleTask(c, 1, image),
    idleTask(c, SMP_VCPUS, image),
  ]);
  for (let rep = 1; rep <= REPS; rep++) {
    for (const t of tasks.filter((t) => !t.error)) {
      progress(`${rep}/${REPS} ${t.c.label}: ${t.what}`);
      try {
        t.samples.push(await t.once());
      } catch (e) {
        t.error = e instanceof RunFailed ? e.message : String(e);
      }
    }
  }
  for (const [guest, xs] of Object.entries(selfTimed)) {
    if (xs.length)
      remarks.push(
        `C floor ${guest}: self-timed (clock_gettime around its KVM_RUN loop) ${median(xs).toFixed(2)} µs/exit`,
      );
  }
  const rows = new Map<ContenderKey, Row>();
  for (const t of tasks) {
    const row = rows.get(t.c.key) ?? ({} as Row);
    t.metrics.forEach((m, i) => {
      row[m] = t.error ? { error: t.error } : { value: median(t.samples.map((s) => s[i]!)) };
    });
    rows.set(t.c.key, row);
  }
  return rows;
}

// ---- output ----

const DIGITS: Record<Metric, number> = { pio: 2, mmio: 2, startup1: 0, startup8: 0, rss1: 1, rss8: 1 };
const HEADERS: Record<Metric, string> = {
  pio: "PIO µs/exit",
  mmio: "MMIO µs/exit",
  startup1: "start-up ms",
  startup8: `start-up ms (${SMP_VCPUS})`,
  rss1: "RSS MiB",
  rss8: `RSS MiB (${SMP_VCPUS})`,
};
const value = (c: Cell | undefined): number | null => (c && "value" in c ? c.value : null);
const round = (x: number | null, digits: number) => (x === null ? null : Number(x.toFixed(digits)));

function table(contenders: Contender[], rows: Map<ContenderKey, Row>): string {
  const floorRow = rows.get("floor");
  const bunFloorRow = rows.get("bun_floor");
  const lines: string[][] = [["", ...METRICS.map((m) => HEADERS[m])]];
  for (const c of contenders) {
    const row = rows.get(c.key);
    lines.push([
      c.unavailable ? `${c.label}: ${c.unavailable}` : c.label,
      ...METRICS.map((m) => {
        const cell = row?.[m];
        if (!cell) return "—";
        if ("error" in cell) return `failed: ${cell.error}`;
        let s = cell.value.toFixed(DIGITS[m]);
        const base = value(floorRow?.[m]);
        if ((m === "pio" || m === "mmio") && c.key !== "floor" && base)
          s += ` (${(cell.value / base).toFixed(2)}×)`;
        const bunBase = value(bunFloorRow?.[m]);
        if ((m === "rss1" || m === "rss8") && c.key.startsWith("bunvmm") && bunBase)
          s += ` (${(cell.value / bunBase).toFixed(2)}× Bun)`;
        return s;
      }),
    ]);
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const fmt = (l: string[]) =>
    l.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join("  ");
  const out = lines.map(fmt);
  out.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return out.join("\n");
}

const FOOTNOTE = `
(${SMP_VCPUS}) = ${SMP_VCPUS} vCPUs configured, otherwise 1. (×) = figure / C floor's. Every figure is a
  median of ${REPS}; the contenders take turns, one repetition at a time.
µs/exit: each loop guest writes a start-marker byte to the serial port, runs N iterations
  of \`outb %al,(0xf00)\` (PIO) or \`movl %eax,0xd0000000\` (MMIO) with a dec/jnz, writes an
  end-marker byte and powers off. The harness timestamps both markers as they reach the
  VMM's stdout; one sample = (span with N=${ITERATIONS} − span with N=0) / N. Spawn, VM set-up
  and teardown lie outside the span; what is left (pipe latency, the marker exits) cancels
  between N and 0, alike for every contender. The guest's dec/jnz is included: this
  machine's nested KVM emulates it (≈0.8 µs per iteration here), the same for everyone.
start-up: process spawn → the idle guest's first serial byte on stdout.
RSS: VmRSS of the VMM process while the idle guest sits in hlt (interrupts off), sampled after
  the first serial byte once it is stable (≥0.3 s, ≤3 s); nothing subtracted. Guest RAM
  (64 MiB) is untouched beyond the image pages (and, for QEMU, its firmware). With ${SMP_VCPUS}
  vCPUs only vCPU 0 runs; the others wait for INIT/SIPI.
Bun + N idle Workers: the runtime's floor (bench/exit-cost/bun-floor): bare Bun starting N smol
  Workers as bunvmm starts its vCPU workers, each parked; (× Bun) = bunvmm's RSS / this floor's.
QEMU boots the same code as a PVH ELF (-M microvm -kernel) and powers off via isa-debug-exit.`;

function figures(rows: Map<ContenderKey, Row>) {
  const v = (k: ContenderKey, m: Metric) => value(rows.get(k)?.[m]);
  const ratio = (m: Metric) => {
    const a = v("bunvmm", m);
    const b = v("floor", m);
    return a !== null && b ? round(a / b, 2) : null;
  };
  const mib = (k: ContenderKey, m: Metric) => round(v(k, m), 1);
  const rssRatio = (m: Metric) => {
    const a = v("bunvmm", m);
    const b = v("bun_floor", m);
    return a !== null && b ? round(a / b, 2) : null;
  };
  return {
    pio_us_floor: round(v("floor", "pio"), 2),
    pio_us_bunvmm: round(v("bunvmm", "pio"), 2),
    pio_us_qemu: round(v("qemu", "pio"), 2),
    pio_ratio: ratio("pio"),
    mmio_us_floor: round(v("floor", "mmio"), 2),
    mmio_us_bunvmm: round(v("bunvmm", "mmio"), 2),
    mmio_us_qemu: round(v("qemu", "mmio"), 2),
    mmio_ratio: ratio("mmio"),
    startup_ms: round(v("bunvmm", "startup1"), 1),
    qemu_startup_ms: round(v("qemu", "startup1"), 1),
    rss_mib_1: mib("bunvmm", "rss1"),
    rss_mib_8: mib("bunvmm", "rss8"),
    qemu_rss_mib_1: mib("qemu", "rss1"),
    qemu_rss_mib_8: mib("qemu", "rss8"),
    floor_startup_ms: round(v("floor", "startup1"), 1),
    floor_rss_mib_1: mib("floor", "rss1"),
    floor_rss_mib_8: mib("floor", "rss8"),
    bun_floor_rss_mib_1: mib("bun_floor", "rss1"),
    bun_floor_rss_mib_8: mib("bun_floor", "rss8"),
    rss_ratio_bun_floor_1: rssRatio("rss1"),
    rss_ratio_bun_floor_8: rssRatio("rss8"),
    bun_floor_startup_ms: round(v("bun_floor", "startup1"), 1),
    startup_ms_compiled: round(v("bunvmm_bin", "startup1"), 1),
    bin_pio_us: round(v("bunvmm_bin", "pio"), 2),
    bin_mmio_us: round(v("bunvmm_bin", "mmio"), 2),
    bin_startup_ms: round(v("bunvmm_bin", "startup1"), 1),
    bin_rss_mib_1: mib("bunvmm_bin", "rss1"),
    bin_rss_mib_8: mib("bunvmm_bin", "rss8"),
  };
}

async function main(): Promise<number> {
  const missing = ["as", "ld", "objcopy"].filter((t) => !haveTool(t));
  if (missing.length) {
    console.error(`bench: missing ${missing.join(", ")} (apt-get install -y binutils)`);
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-bench-"));
  try {
    const started = performance.now();
    const images = new Map<string, string>();
    const image = (f: Flavour, g: GuestName, n: number): string => {
      const key = `${f}/${g}/${n}`;
      if (!images.has(key)) images.set(key, buildGuest(dir, g, f, n));
      return images.get(key)!;
    };
    const contenders = [
      floor(haveTool("gcc") ? buildFloor(dir) : null),
      bunFloor(),
      bunvmm(),
      bunvmmBin(),
      qemu(),
    ];
    for (const c of contenders) if (c.unavailable) progress(`${c.label}: skipped (${c.unavailable})`);
    const stale = binStale();
    if (stale) remarks.push(stale);
    const rows = await measure(
      contenders.filter((c) => !c.unavailable),
      image,
    );
    progress(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    for (const f of failures) process.stderr.write(`failed: ${f}\n`);
    console.log(table(contenders, rows));
    console.log(FOOTNOTE.trimStart());
    for (const r of remarks) console.log(`* ${r}`);
    console.log(JSON.stringify(figures(rows)));
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
