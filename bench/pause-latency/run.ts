// bench/pause-latency: how long pause() and resume() take for 1, 2, 4 and 8 vCPUs, with the vCPUs
// spinning in the guest (no exits) or hammering MMIO registers (an exit per few instructions), for
// bunvmm's library and REST API next to QEMU's QMP stop/cont on the same machine.
//
//   bun bench/pause-latency/run.ts [--samples=300] [--warmup=10] [--vcpus=1,2,4,8] [--dump=FILE]
//
// Progress goes to stderr; stdout gets the machine, the tables and, as its last line, one JSON object
// with the figures. --dump writes every sample (and its time in the cell) to FILE as JSON.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { haveTool } from "../tools.ts";
import { buildPvh, buildRaw, type GuestName } from "./build.ts";
import { librarySession, restSession } from "./bunvmm.ts";
import { killAll } from "./children.ts";
import { type CycleOptions, CycleRunner, type Samples, type Stats, stats } from "./cycles.ts";
import { qemuExe, qemuSession, qemuVersion } from "./qemu.ts";
import { CountingOps, OtherLoad, type Session } from "./session.ts";

const arg = (name: string): string | undefined =>
  Bun.argv.find((s) => s.startsWith(`--${name}=`))?.slice(name.length + 3);
const num = (name: string, dflt: number): number => {
  const v = Number(arg(name));
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : dflt;
};
const SAMPLES = num("samples", 300);
const WARMUP = num("warmup", 10);
const VCPUS = (arg("vcpus") ?? "1,2,4,8")
  .split(",")
  .map(Number)
  .filter((n) => Number.isInteger(n) && n >= 1 && n <= 64);
const DUMP = arg("dump");
/** Cycles per turn: the contenders of a cell take turns, this many cycles at a time. */
const BLOCK = 50;
/** Gap before every operation: the guest runs (before a pause) or stays paused (before a resume). */
const GAP_MIN_MS = 1;
const GAP_MAX_MS = 4;
const SEED = 20240903;
/** Everything, builds and boots included; a run takes two to three minutes here, depending on the load. */
const BENCH_DEADLINE_MS = 10 * 60_000;

type Mode = "spin" | "mmio";
const MODES: Mode[] = ["spin", "mmio"];
type ContenderKey = "lib" | "api" | "qemu";
interface Contender {
  key: ContenderKey;
  label: string;
  /** What the pause and resume columns are called for this contender. */
  ops: [string, string];
  unavailable: string | null;
  start(mode: Mode, vcpus: number): Promise<Session>;
}
/** One contender in one cell: its samples, and the cores other processes kept busy meanwhile. */
type Cell = { samples: Samples; pause: Stats; resume: Stats; otherCores: number | null } | { error: string };

const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const failures: string[] = [];
const remarks: string[] = [];

function machine(qemu: string | null): string {
  const cpu = cpus()[0]?.model.trim() ?? "?";
  const nproc = Bun.spawnSync(["nproc"], { stdout: "pipe" }).stdout.toString().trim();
  const kernel = Bun.spawnSync(["uname", "-sr"], { stdout: "pipe" }).stdout.toString().trim();
  const hz = (() => {
    const release = Bun.spawnSync(["uname", "-r"], { stdout: "pipe" }).stdout.toString().trim();
    for (const read of [
      () => Bun.gunzipSync(readFileSync("/proc/config.gz")),
      () => readFileSync(`/boot/config-${release}`),
    ]) {
      try {
        const m = /^CONFIG_HZ=(\d+)/m.exec(new TextDecoder().decode(read()));
        if (m) return m[1]!;
      } catch {
        // not there: try the next place
      }
    }
    return null;
  })();
  return [
    `machine: nproc ${nproc}, ${cpu}, ${kernel}${hz ? ` (CONFIG_HZ=${hz})` : ""}, /dev/kvm ${Bun.spawnSync(["sh", "-c", "grep -qw hypervisor /proc/cpuinfo"]).success ? "nested (the host is itself a VM)" : "on bare metal"}`,
    `software: Bun ${Bun.version}, ${qemu ? `QEMU ${qemu}` : "QEMU not installed"}`,
    `run: ${SAMPLES} samples per cell after ${WARMUP} warm-up cycles, gaps ${GAP_MIN_MS}-${GAP_MAX_MS} ms`,
  ].join("\n");
}

// ---- output ----

const f = (x: number) => x.toFixed(2);
const triple = (s: Stats) => `${f(s.p50)} / ${f(s.p99)} / ${f(s.max)}`;
const vcpuLabel = (n: number) => `${n} vCPU${n === 1 ? "" : "s"}`;

function table(title: string, which: 0 | 1, contenders: Contender[], cells: Map<string, Cell>): string {
  const lines: string[][] = [
    [
      title,
      ...contenders.map((c) =>
        c.unavailable ? `${c.label}: ${c.unavailable}` : `${c.label} ${c.ops[which]}`,
      ),
    ],
  ];
  for (const mode of MODES) {
    for (const n of VCPUS) {
      lines.push([
        `${mode}, ${vcpuLabel(n)}`,
        ...contenders.map((c) => {
          const cell = cells.get(`${c.key}/${mode}/${n}`);
          if (!cell) return "—";
          if ("error" in cell) return `failed: ${cell.error.split("\n")[0]!.slice(0, 40)}`;
          return triple(which === 0 ? cell.pause : cell.resume);
        }),
      ]);
    }
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const fmt = (l: string[]) =>
    l.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join("  ");
  const out = lines.map(fmt);
  out.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return out.join("\n");
}

const ordinal = (k: number) =>
  `${k}${k % 100 >= 11 && k % 100 <= 13 ? "th" : (["th", "st", "nd", "rd"][k % 10] ?? "th")}`;

const FOOTNOTE = `
Each cell: p50 / p99 / max in ms over ${SAMPLES} cycles (nearest rank: the p99 is the ${ordinal(SAMPLES - Math.ceil(0.99 * SAMPLES) + 1)}
  largest), after ${WARMUP} warm-up cycles that are not counted. A cycle: a random gap of ${GAP_MIN_MS}-${GAP_MAX_MS} ms
  (the guest runs), pause, a gap (it stays paused), resume; every contender gets the same gaps
  (seeded). Each cell boots one VM per contender; they take turns, ${BLOCK} cycles at a time, the
  others parked meanwhile (a parked VM's threads sleep), so a burst of other work on this shared
  machine hits every contender alike.
spin: test/guests/counter.S (PIO=0): every vCPU increments its counter in RAM, no exits.
mmio: bunvmm: test/guests/hotplug.S: every vCPU loops on the CPU hotplug controller (spinlock in
  RAM, CSEL write, status read: two MMIO exits per CPU looked at). QEMU has no such controller, so
  it runs guests/mmio-spin.S instead: count, then one store to unowned MMIO (0xd0000000), forever.
  Both exit to the VMM all the time; the figures compare the VMMs, not the guests.
Before measuring, every vCPU's counter (0x9000 + 4 * id) must have moved; after, it must have moved
  again (bunvmm REST: read through /proc/PID/mem; QEMU: HMP xp over QMP); and the VMM must have
  counted every pause asked of it (bunvmm: each vCPU's pauses counter; QEMU: STOP events).
bunvmm library: \`await vm.pause()\` / \`await vm.resume()\` in this process, the Vm built with
  Vm.create(config, { serial: { kind: "none" } }) (default 1000 ms deadline per vCPU wait). A pause
  resolves when every vCPU has parked, a resume when every vCPU has acknowledged it runs again.
  An in-process call: no IPC, no serialisation, and the VMM thread is this one.
bunvmm REST: \`bunvmm run --api-socket\` (src/cli/main.ts under Bun) as a child; PUT
  /api/v1/vm.pause and vm.resume with Bun's fetch over the Unix socket, request to 204. The same
  work in the VMM as the library's plus an HTTP round trip: the figure to set beside QMP's.
QEMU: \`-M microvm -accel kvm -smp N -m 64 -nographic -nodefaults -qmp unix:SOCK,server=on,wait=off\`
  on the same code as a PVH ELF (guests/pvh-entry.S); {"execute":"stop"} and {"execute":"cont"} over
  QMP (Bun.connect), timed from writing the command to reading the reply with its id, so a JSON
  round trip over a socket and QEMU's main loop are included; the STOP/RESUME events are counted,
  never waited for. stop answers once every vCPU thread has left KVM_RUN (pause_all_vcpus). cont
  first has every vCPU thread, one after the other and while they are still stopped, run
  KVM_KVMCLOCK_CTRL (kvmclock's run_on_cpu; seen with strace), then wakes them all and answers
  without waiting for them to run.
other processes: the cores (of ${cpus().length}) kept busy by processes outside the bench and its children
  during the contender's turns (/proc/stat minus their own CPU time): this machine is shared.
JSON: pause_*/resume_* = bunvmm library, api_* = bunvmm REST, qemu_stop_*/qemu_cont_* = QEMU, each
  _p50/_p99/_max_ms_<vCPUs>_<mode>; qemu_stop_p99_ms and qemu_cont_p99_ms repeat 8 vCPUs, mmio.`;

function figures(contenders: Contender[], cells: Map<string, Cell>) {
  const out: Record<string, number | null> = {};
  const names: Record<ContenderKey, [string, string]> = {
    lib: ["pause", "resume"],
    api: ["api_pause", "api_resume"],
    qemu: ["qemu_stop", "qemu_cont"],
  };
  for (const c of contenders) {
    for (const mode of MODES) {
      for (const n of VCPUS) {
        const cell = cells.get(`${c.key}/${mode}/${n}`);
        const ok = cell && "samples" in cell ? cell : null;
        for (const [i, op] of (["pause", "resume"] as const).entries()) {
          for (const p of ["p50", "p99", "max"] as const) {
            out[`${names[c.key][i]}_${p}_ms_${n}_${mode}`] = ok ? Number(ok[op][p].toFixed(3)) : null;
          }
        }
      }
    }
  }
  out.qemu_stop_p99_ms = out.qemu_stop_p99_ms_8_mmio ?? null;
  out.qemu_cont_p99_ms = out.qemu_cont_p99_ms_8_mmio ?? null;
  out.samples = SAMPLES;
  return out;
}

/** The first cycle after boot (a warm-up cycle, not counted), per contender, across cells. */
function warmupRemark(contenders: Contender[], cells: Map<string, Cell>): void {
  for (const c of contenders) {
    const ok = [...cells.entries()]
      .filter(([k, v]) => k.startsWith(`${c.key}/`) && "samples" in v)
      .map(([, v]) => v) as { samples: Samples }[];
    if (!ok.length || !ok[0]!.samples.warmupPause.length) continue;
    const range = (xs: number[]) => `${f(Math.min(...xs))}-${f(Math.max(...xs))} ms`;
    remarks.push(
      `${c.label}: first cycle after boot (a warm-up cycle, not counted): ${c.ops[0]} ${range(ok.map((v) => v.samples.warmupPause[0]!))}, ${c.ops[1]} ${range(ok.map((v) => v.samples.warmupResume[0]!))} across cells`,
    );
  }
}

/** One contender's VM in the cell being measured. */
interface Turn {
  c: Contender;
  session: Session;
  ops: CountingOps;
  runner: CycleRunner;
  load: OtherLoad;
  before: number[];
  error?: string;
}

/**
 * One cell (a guest mode, a vCPU count): boots every contender's VM, parks each once its vCPUs count,
 * then lets them take turns, BLOCK cycles at a time (resume, cycles, pause), so that a burst of other
 * work on the machine hits every contender alike. Then checks and closes them.
 */
async function measureCell(
  contenders: Contender[],
  mode: Mode,
  n: number,
  o: CycleOptions,
  cells: Map<string, Cell>,
) {
  const where = (c: Contender) => `${c.label}, ${mode}, ${vcpuLabel(n)}`;
  const fail = (c: Contender, e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    failures.push(`${where(c)}: ${msg}`);
    cells.set(`${c.key}/${mode}/${n}`, { error: msg });
    return msg;
  };
  const turns: Turn[] = [];
  try {
    for (const c of contenders.filter((c) => !c.unavailable)) {
      progress(`${where(c)}: booting`);
      try {
        const session = await c.start(mode, n);
        const ops = new CountingOps(session);
        turns.push({ c, session, ops, runner: new CycleRunner(ops, o), load: new OtherLoad(), before: [] });
        await ops.pause(); // parked until its turn
      } catch (e) {
        fail(c, e);
      }
    }
    const pids = turns.map((t) => t.session.pid);
    for (const t of turns) t.before = await t.session.counters();
    for (let round = 1; turns.some((t) => !t.error && !t.runner.finished); round++) {
      for (const t of turns.filter((t) => !t.error && !t.runner.finished)) {
        progress(`${where(t.c)}: turn ${round}`);
        try {
          await t.ops.resume();
          t.load.start(pids);
          await t.runner.block(BLOCK);
          t.load.stop();
          await t.ops.pause();
        } catch (e) {
          t.error = fail(t.c, e);
        }
      }
    }
    for (const t of turns.filter((t) => !t.error)) {
      const s = t.runner.samples;
      cells.set(`${t.c.key}/${mode}/${n}`, {
        samples: s,
        pause: stats(s.pause),
        resume: stats(s.resume),
        otherCores: t.load.cores(),
      });
      const after = await t.session.counters();
      const still = after.flatMap((c, i) => (c === t.before[i] ? [i] : []));
      // hotplug.S counts once per scan of every CPU, each under an unfair spinlock: with 8 vCPUs on 2
      // busy cores one vCPU can spin on that lock for seconds (its thread runs, and parks when asked).
      const why =
        mode === "mmio" && t.c.key !== "qemu"
          ? " (hotplug.S: starved on its unfair spinlock, not stopped)"
          : "";
      if (still.length)
        remarks.push(`${where(t.c)}: vCPU(s) ${still.join(", ")} did not count during the cycles${why}`);
      const seen = await t.session.pausesSeen();
      if (seen.some((p) => p !== t.ops.pauses))
        remarks.push(
          `${where(t.c)}: the VMM counted ${JSON.stringify(seen)} pauses, ${t.ops.pauses} were asked for`,
        );
    }
  } finally {
    await Promise.all(turns.map((t) => t.session.close().catch((e) => fail(t.c, e))));
  }
}

function loadTable(contenders: Contender[], cells: Map<string, Cell>): string {
  const lines: string[][] = [["other processes, cores busy", ...contenders.map((c) => c.label)]];
  for (const mode of MODES) {
    for (const n of VCPUS) {
      lines.push([
        `${mode}, ${vcpuLabel(n)}`,
        ...contenders.map((c) => {
          const cell = cells.get(`${c.key}/${mode}/${n}`);
          return cell && "samples" in cell && cell.otherCores !== null ? cell.otherCores.toFixed(2) : "—";
        }),
      ]);
    }
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const out = lines.map((l) =>
    l.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join("  "),
  );
  out.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return out.join("\n");
}

async function main(): Promise<number> {
  const missing = ["as", "ld"].filter((t) => !haveTool(t));
  if (missing.length) {
    console.error(`bench: missing ${missing.join(", ")} (apt-get install -y binutils)`);
    return 1;
  }
  const loadBefore = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-pause-"));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  process.on("exit", removeDir); // also after SIGINT/SIGTERM (children.ts exits on them)
  try {
    const started = performance.now();
    const exe = qemuExe();
    const qv = exe ? qemuVersion(exe) : null;
    const raw = new Map<GuestName, string>();
    const image = (g: GuestName) => raw.get(g) ?? raw.set(g, buildRaw(dir, g)).get(g)!;
    const pvh = new Map<string, string>();
    const elf = (g: GuestName, n: number) =>
      pvh.get(`${g}/${n}`) ?? pvh.set(`${g}/${n}`, buildPvh(dir, g, n)).get(`${g}/${n}`)!;
    const bunvmmGuest: Record<Mode, GuestName> = { spin: "counter", mmio: "hotplug" };
    const qemuGuest: Record<Mode, GuestName> = { spin: "counter", mmio: "mmio-spin" };
    const contenders: Contender[] = [
      {
        key: "lib",
        label: "bunvmm library",
        ops: ["pause()", "resume()"],
        unavailable: null,
        start: (m, n) => librarySession(image(bunvmmGuest[m]), n),
      },
      {
        key: "api",
        label: "bunvmm REST",
        ops: ["vm.pause", "vm.resume"],
        unavailable: null,
        start: (m, n) => restSession(dir, image(bunvmmGuest[m]), n),
      },
      {
        key: "qemu",
        label: qv ? `QEMU ${qv.split(".").slice(0, 2).join(".")} QMP` : "QEMU",
        ops: ["stop", "cont"],
        unavailable: exe ? null : "not installed",
        start: (m, n) => qemuSession(exe!, dir, elf(qemuGuest[m], n), n),
      },
    ];
    for (const c of contenders) if (c.unavailable) progress(`${c.label}: skipped (${c.unavailable})`);
    const cells = new Map<string, Cell>();
    const o: CycleOptions = {
      samples: SAMPLES,
      warmup: WARMUP,
      gapMinMs: GAP_MIN_MS,
      gapMaxMs: GAP_MAX_MS,
      seed: SEED,
    };
    for (const mode of MODES) for (const n of VCPUS) await measureCell(contenders, mode, n, o, cells);
    const seconds = (performance.now() - started) / 1000;
    progress(`done in ${seconds.toFixed(1)} s`);
    for (const x of failures) process.stderr.write(`failed: ${x}\n`);
    if (DUMP) {
      const dump = Object.fromEntries(
        [...cells.entries()].map(([k, v]) => [
          k,
          "samples" in v ? { ...v.samples, otherCores: v.otherCores } : v,
        ]),
      );
      writeFileSync(DUMP, JSON.stringify(dump));
    }
    warmupRemark(contenders, cells);
    const loadAfter = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
    console.log(machine(qv));
    console.log(
      `load average: ${loadBefore} before, ${loadAfter} after; the run took ${seconds.toFixed(0)} s`,
    );
    console.log();
    console.log(table("pause, ms: p50 / p99 / max", 0, contenders, cells));
    console.log();
    console.log(table("resume, ms: p50 / p99 / max", 1, contenders, cells));
    console.log();
    console.log(loadTable(contenders, cells));
    console.log(FOOTNOTE);
    for (const r of remarks) console.log(`* ${r}`);
    console.log(JSON.stringify(figures(contenders, cells)));
    return 0;
  } finally {
    killAll();
    removeDir();
  }
}

const watchdog = setTimeout(() => {
  process.stderr.write(`bench: still running after ${BENCH_DEADLINE_MS / 1000} s; giving up\n`);
  killAll();
  process.exit(2);
}, BENCH_DEADLINE_MS);
const code = await main();
clearTimeout(watchdog);
process.exit(code);
