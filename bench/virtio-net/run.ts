// bench/virtio-net: virtio-net throughput of bunvmm next to QEMU microvm, both on a TAP in a network
// namespace the bench makes and removes, and bunvmm's hybrid vsock host -> guest throughput.
//
//   bun bench/virtio-net/run.ts [--reps=3] [--frames=20000] [--rx-seconds=2] [--rx-rate=20000]
//                               [--vsock-mib=8]
//
// Progress and failures go to stderr; stdout gets the table, footnotes and, as its last line, one
// JSON object with the figures. Needs root (namespaces, TAPs), /dev/kvm, gcc + binutils, python3.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cGuestElf } from "../../test/helpers/c-guest.ts";
import { haveTool, qemuMicrovmArgs } from "../tools.ts";
import {
  FRAME_BYTES,
  GUEST_IP,
  GUEST_MAC,
  HOST_IP,
  leftoverNamespaces,
  NET_PHASES,
  type NetPhase,
  PORTS,
  type RunResult,
  runOnce,
  TAP,
} from "./session.ts";

const arg = (name: string, dflt: number): number => {
  const a = Bun.argv.find((s) => s.startsWith(`--${name}=`));
  const v = a ? Number(a.slice(name.length + 3)) : dflt;
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const REPS = Math.floor(arg("reps", 3));
const FRAMES = Math.floor(arg("frames", 20_000));
const RX_SECONDS = arg("rx-seconds", 2);
const RX_RATE = Math.floor(arg("rx-rate", 20_000));
const VSOCK_MIB = arg("vsock-mib", 8);
const MIB = 1 << 20;
const VSOCK_BYTES = Math.floor(VSOCK_MIB * MIB);
/** Guest RAM for both VMMs; the guest needs about 3 MiB. */
const MEMORY_MIB = 64;
const GUEST_CID = 3;
/** A whole run: boot, two TX phases, two RX phases of RX_SECONDS, vsock, power-off. */
const RUN_DEADLINE_MS = 120_000;
const REPO = join(import.meta.dir, "..", "..");
const BUN = join(REPO, "node_modules", ".bin", "bun");
const CLI = join(REPO, "src", "cli", "main.ts");
const ISA_DEBUG_EXIT_STATUS = 1; // QEMU's exit status for isa-debug-exit value 0: (0 << 1) | 1

type Key = "bunvmm" | "qemu";
type Figure = NetPhase | "vsock";

interface Contender {
  key: Key;
  label: string;
  unavailable: string | null;
  powerOffCode: number;
  vsockSocket: string | null;
  command(elf: string): string[];
}

const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const tail = (s: string, n = 6) => s.trimEnd().split("\n").slice(-n).join("\n");
/** The reason a run failed, in one line: the last stderr line that says something. */
const lastWords = (stderr: string, fallback: string) =>
  stderr
    .trim()
    .split("\n")
    .map((l) => l.replace(/^\[\w+\]\s*(\[bunvmm\]\s*)?/, "").trim())
    .filter(Boolean)
    .at(-1) ?? fallback;

function bunvmmContender(dir: string): Contender {
  const socket = join(dir, "vsock.sock");
  return {
    key: "bunvmm",
    label: "bunvmm",
    unavailable: null,
    powerOffCode: 0,
    vsockSocket: socket,
    command: (elf) => {
      const config = join(dir, "bunvmm.toml");
      writeFileSync(
        config,
        [
          "[memory]",
          `size = "${MEMORY_MIB}M"`,
          "[payload]",
          `kernel = ${JSON.stringify(elf)}`,
          'format = "elf"',
          "[serial]",
          'mode = "tty"',
          "[[net]]",
          `tap = "${TAP}"`,
          `mac = "${GUEST_MAC}"`,
          'id = "net0"',
          "[vsock]",
          `cid = ${GUEST_CID}`,
          `socket = ${JSON.stringify(socket)}`,
          'id = "vsock0"',
          "",
        ].join("\n"),
      );
      return [BUN, CLI, "run", "--log-level", "warn", config];
    },
  };
}

function qemuContender(): Contender {
  const exe = Bun.which("qemu-system-x86_64");
  const version = exe
    ? (/version (\d+\.\d+(?:\.\d+)?)/.exec(
        Bun.spawnSync([exe, "--version"], { stdout: "pipe", timeout: 10_000 }).stdout.toString(),
      )?.[1] ?? "?")
    : "";
  return {
    key: "qemu",
    label: `QEMU ${version} microvm`,
    unavailable: exe ? null : "not installed",
    powerOffCode: ISA_DEBUG_EXIT_STATUS,
    vsockSocket: null,
    command: (elf) => [
      ...qemuMicrovmArgs(exe, MEMORY_MIB),
      "-netdev",
      `tap,id=n0,ifname=${TAP},script=no,downscript=no`,
      "-device",
      `virtio-net-device,netdev=n0,mac=${GUEST_MAC}`,
      "-kernel",
      elf,
    ],
  };
}

/** Per contender: every run's figures (frames/s; MiB/s for vsock), or why it failed. */
interface Column {
  samples: Partial<Record<Figure, number>>[];
  error?: string;
  /** Per-run checks: what the host saw against what the guest sent, RX offered rates. */
  checks: RunChecks[];
}

/** Figures of one run; throws with the reason when the run did not complete every phase. */
function figuresOf(
  c: Contender,
  r: RunResult,
  failures: string[],
  cmd: string[],
): Partial<Record<Figure, number>> {
  const missing = NET_PHASES.filter((p) => !r.phases[p]);
  if (c.vsockSocket && !r.phases.vsock) missing.push("vsock" as NetPhase);
  const why = r.timedOut
    ? `timed out after ${RUN_DEADLINE_MS} ms`
    : missing.length
      ? `${lastWords(r.stderr, `no ${missing.join(", ")} markers (exit ${r.exitCode})`)}${
          r.lines.length ? `; guest said: ${r.lines.join(" | ")}`.slice(0, 300) : ""
        }`
      : r.done !== "0"
        ? `the guest ended with DONE ${r.done}`
        : r.exitCode !== c.powerOffCode
          ? `exit code ${r.exitCode}, expected ${c.powerOffCode}`
          : null;
  if (why) {
    failures.push(`${c.label}: ${why}\n  ip netns exec NS ${cmd.join(" ")}\n${tail(r.stderr)}`);
    throw new Error(why);
  }
  const out: Partial<Record<Figure, number>> = {};
  for (const p of NET_PHASES) out[p] = r.phases[p]!.count / (r.phases[p]!.spanMs / 1000);
  if (r.phases.vsock) out.vsock = r.phases.vsock.count / MIB / (r.phases.vsock.spanMs / 1000);
  return out;
}

/** What one run showed beyond its figures: the host's view of TX, and how much of the RX offer was taken. */
interface RunChecks {
  /** TX frames the host's packet socket did not see (should be 0), and its drops. */
  txUnseen: number;
  hostDrops: number;
  /** Per RX phase: [host's offered frames/s, fraction of them the guest took]. */
  rx: Partial<Record<NetPhase, [number, number]>>;
}

function checks(r: RunResult): RunChecks {
  let txUnseen = 0;
  for (const p of ["tx64", "tx1514"] as const) txUnseen += FRAMES - (r.hostSaw[String(FRAME_BYTES[p])] ?? 0);
  const rx: RunChecks["rx"] = {};
  for (const p of ["rx64", "rx1514"] as const) {
    const s = r.hostSent[p];
    if (s?.sent) rx[p] = [s.sent / s.seconds, (r.phases[p]?.count ?? 0) / s.sent];
  }
  return { txUnseen, hostDrops: r.hostDrops, rx };
}

/** One line per contender summing up its runs' checks. */
function checkNotes(c: Contender, runs: RunChecks[]): string[] {
  if (!runs.length) return [];
  const range = (xs: number[], f: (x: number) => string) => {
    const [lo, hi] = [f(Math.min(...xs)), f(Math.max(...xs))];
    return lo === hi ? lo : `${lo}-${hi}`;
  };
  const unseen = runs.reduce((a, r) => a + r.txUnseen, 0);
  const drops = runs.reduce((a, r) => a + r.hostDrops, 0);
  const notes = [
    unseen || drops
      ? `${c.label} TX: the host's packet socket missed ${unseen} of the guest's frames over ${runs.length} runs (its own drops: ${drops})`
      : `${c.label} TX: the host's packet socket saw every frame the guest sent, in every run`,
  ];
  for (const p of ["rx64", "rx1514"] as const) {
    const xs = runs.map((r) => r.rx[p]).filter((x): x is [number, number] => x !== undefined);
    if (xs.length)
      notes.push(
        `${c.label} ${p}: the host offered ${range(
          xs.map((x) => x[0]),
          (x) => x.toFixed(0),
        )} frames/s; the guest took ${range(
          xs.map((x) => x[1] * 100),
          (x) => x.toFixed(0),
        )} % of them (the rest the TAP dropped: RX ran at the guest's pace)`,
      );
  }
  return notes;
}

/** The first three fields of /proc/loadavg: other work on this shared machine moves every figure. */
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

const mbit = (p: Figure, fps: number) => (fps * FRAME_BYTES[p as NetPhase] * 8) / 1e6;
const round = (x: number | null, d: number) => (x === null ? null : Number(x.toFixed(d)));

function table(contenders: Contender[], cols: Map<Key, Column>): string {
  const head = [
    "",
    "TX 64 B fps",
    "TX 64 Mbit/s",
    "TX 1514 B fps",
    "TX 1514 Mbit/s",
    "RX 64 B fps",
    "RX 64 Mbit/s",
    "RX 1514 B fps",
    "RX 1514 Mbit/s",
    "vsock h2g MiB/s",
  ];
  const rows: string[][] = [head];
  const med = (k: Key, f: Figure) => {
    const col = cols.get(k);
    const xs = col?.samples.map((s) => s[f]).filter((x): x is number => x !== undefined) ?? [];
    return xs.length ? median(xs) : null;
  };
  for (const c of contenders) {
    const col = cols.get(c.key);
    if (c.unavailable || col?.error) {
      rows.push([`${c.label}: ${c.unavailable ?? `failed: ${col!.error}`}`.slice(0, 200)]);
      continue;
    }
    const cells = [c.label];
    for (const f of NET_PHASES) {
      const v = med(c.key, f);
      const q = c.key === "bunvmm" ? med("qemu", f) : null;
      cells.push(v === null ? "—" : `${v.toFixed(0)}${q ? ` (${(v / q).toFixed(2)}×)` : ""}`);
      cells.push(v === null ? "—" : mbit(f, v).toFixed(1));
    }
    const vs = med(c.key, "vsock");
    cells.push(vs === null ? (c.key === "qemu" ? "n/a (no hybrid vsock)" : "—") : vs.toFixed(1));
    rows.push(cells);
  }
  // a contender that did not run has one cell, its reason, which may be wider than the table
  const widths = head.map((_, i) => Math.max(...rows.filter((r) => r.length > 1).map((r) => r[i]!.length)));
  const fmt = (r: string[]) =>
    r.length === 1
      ? r[0]!
      : r.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join("  ");
  const out = rows.map(fmt);
  out.splice(1, 0, widths.map((w) => "-".repeat(w)).join("  "));
  return out.join("\n");
}

function json(cols: Map<Key, Column>): Record<string, number | null> {
  const med = (k: Key, f: Figure) => {
    const col = cols.get(k);
    if (!col || col.error) return null;
    const xs = col.samples.map((s) => s[f]).filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : null;
  };
  const out: Record<string, number | null> = {};
  for (const f of NET_PHASES) {
    const name = f.replace("1514", "1500");
    const b = med("bunvmm", f);
    const q = med("qemu", f);
    out[`${name}_fps`] = round(b, 0);
    out[`${name}_mbit`] = b === null ? null : round(mbit(f, b), 1);
    out[`qemu_${name}_fps`] = round(q, 0);
    out[`qemu_${name}_mbit`] = q === null ? null : round(mbit(f, q), 1);
    out[`${name}_ratio`] = b !== null && q ? round(b / q, 2) : null;
  }
  const v = med("bunvmm", "vsock");
  out.vsock_h2g_mib_s = round(v, 1);
  out.vsock_h2g_mbit = v === null ? null : round((v * MIB * 8) / 1e6, 1);
  return out;
}

const FOOTNOTE = `
fps = frames a second, the median of ${REPS} runs; (×) = bunvmm / QEMU. Mbit/s counts the Ethernet
  frame without FCS: 64 B (a UDP datagram with 22 payload bytes) and 1514 B (a 1500-byte IP packet).
TX: the guest posts ${FRAMES} frames as fast as its 256-entry TX ring allows (polling the used ring, one
  notification per batch); the span runs from its BEGIN marker to its END marker on the VMM's stdout.
RX: the host sends frames into the TAP for ${RX_SECONDS} s at up to ${RX_RATE} a second (bursts each
  millisecond; the TAP drops what the VMM does not take), then END frames; the guest counts what
  reaches it from its first data frame to the first END frame.
vsock: bunvmm only. QEMU 7.2's vsock devices are vhost-vsock (the kernel's /dev/vhost-vsock, absent
  on hosts without the vhost_vsock module) and vhost-user-vsock (an external daemon); it has no hybrid
  Unix-socket vsock. The host writes ${VSOCK_MIB} MiB through \`CONNECT ${PORTS.vsock}\` on bunvmm's socket.
The guest's code runs emulated by this machine's nested KVM (~2 M instructions a second): its own
  per-frame work bounds both VMMs alike; the figures compare VMMs, not networks.`;

async function main(): Promise<number> {
  const missing = ["gcc", "ld", "objcopy", "python3", "ip"].filter((t) => !haveTool(t));
  if (missing.length) {
    console.error(`bench: missing ${missing.join(", ")}`);
    return 1;
  }
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-netbench-"));
  try {
    const ip = (s: string) => s.split(".").reduce((a, b) => (a * 256 + Number(b)) >>> 0, 0);
    const elf = cGuestElf(["acpi.c", "netbench-net.c", "netbench-vsock.c", "netbench.c"], {
      FRAMES,
      HOST_IP: ip(HOST_IP),
      GUEST_IP: ip(GUEST_IP),
      TX_PORT: PORTS.tx,
      DATA_PORT: PORTS.data,
      END_PORT: PORTS.end,
      VSOCK_PORT: PORTS.vsock,
      VSOCK_BYTES,
    });
    const contenders = [bunvmmContender(dir), qemuContender()];
    const cols = new Map<Key, Column>(contenders.map((c) => [c.key, { samples: [], checks: [] }]));
    const failures: string[] = [];
    const started = performance.now();
    const loadBefore = loadAverage();
    for (let rep = 1; rep <= REPS; rep++) {
      for (const c of contenders) {
        const col = cols.get(c.key)!;
        if (c.unavailable || col.error) continue;
        progress(`${rep}/${REPS} ${c.label}`);
        const cmd = c.command(elf);
        try {
          const r = await runOnce({
            command: cmd,
            vsockSocket: c.vsockSocket,
            rxSeconds: RX_SECONDS,
            rxRate: RX_RATE,
            vsockBytes: VSOCK_BYTES,
            deadlineMs: RUN_DEADLINE_MS,
          });
          col.samples.push(figuresOf(c, r, failures, cmd));
          col.checks.push(checks(r));
        } catch (e) {
          col.error = e instanceof Error ? e.message : String(e);
        }
      }
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    progress(`done in ${seconds} s`);
    for (const f of failures) process.stderr.write(`failed: ${f}\n`);
    const left = leftoverNamespaces();
    console.log(table(contenders, cols));
    console.log(FOOTNOTE.trimStart());
    for (const c of contenders) for (const n of checkNotes(c, cols.get(c.key)!.checks)) console.log(`* ${n}`);
    console.log(`* load average: ${loadBefore} before, ${loadAverage()} after; the run took ${seconds} s`);
    if (left.length) console.log(`* namespaces left behind: ${left.join(", ")}`);
    console.log(JSON.stringify(json(cols)));
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exit(await main());
