// bench/snapshot: time to snapshot a paused guest and time from restore to the guest running again,
// for 64 MiB and 1 GiB guests (a quarter of RAM written by the guest: its working set), in-process
// through the library and process-level through `bunvmm restore --resume`, beside QEMU's
// migrate-to-file (QMP `migrate "exec:cat > FILE"`) and `-incoming "exec:cat FILE"` of the same guest;
// and boot-to-first-output versus restore-to-first-output. Progress on stderr, a table on stdout, and
// as the last line one JSON object. `npm run bench:snapshot`; `--reps=N` (default 5).
//
// Threads: Bun's main thread; the VMs' workers are bunvmm's.
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assembleRawGuest, GUEST_INCLUDE_DIR } from "../../src/demo/assemble.ts";
import { Vm } from "../../src/index.ts";
import { collect, killAll, stop, track } from "../pause-latency/children.ts";
import { qemuExe, qemuVersion } from "../pause-latency/qemu.ts";
import { Qmp } from "../pause-latency/qmp.ts";
import { sh } from "../tools.ts";

const REPS = Number(process.argv.find((a) => a.startsWith("--reps="))?.slice(7) ?? 5);
const SIZES = [
  { name: "64m", mib: 64 },
  { name: "1g", mib: 1024 },
] as const;
/** Deadlines: a boot or a restore here takes seconds at most; a child is killed past these. */
const READY_DEADLINE_MS = 60_000;
const QMP_DEADLINE_MS = 30_000;
const REPO = join(import.meta.dir, "..", "..");
const BUN = process.execPath;
const CLI = join(REPO, "src", "cli", "main.ts");
const PVH = join(REPO, "bench", "pause-latency", "guests");
const TICKER = join(import.meta.dir, "guests", "ticker.S");
/** The compiled executable (`npm run build`), measured as a second bunvmm when it exists. */
const DIST = join(REPO, "dist", "bunvmm");
const haveDist = existsSync(DIST);

const work = mkdtempSync(join(tmpdir(), "bunvmm-bench-snapshot-"));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const log = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : Number.NaN;
};
const ms = (x: number | null) => (x === null || Number.isNaN(x) ? "n/a" : x.toFixed(1));

/** Resolves with the time `text()` first matches `re`, polled every millisecond, by `deadlineMs`. */
async function until(
  text: () => string,
  re: RegExp,
  what: string,
  deadlineMs = READY_DEADLINE_MS,
): Promise<number> {
  const deadline = performance.now() + deadlineMs;
  while (!re.test(text())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 0)); // poll, bounded by the deadline above
  }
  return performance.now();
}

/** A child whose stdout is collected as it arrives. */
function spawn(cmd: string[]) {
  const proc = track(Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
  return { proc, stdout: collect(proc.stdout), stderr: collect(proc.stderr) };
}

interface Figures {
  snapshot: number[];
  restoreToRunning: number[];
  restoreToOutput: number[];
  processRestoreToOutput: number[];
  bootToOutput: number[];
  distRestoreToOutput: number[];
  distBootToOutput: number[];
  qemuSnapshot: number[];
  qemuRestoreToOutput: number[];
  qemuBootToOutput: number[];
}

async function bunvmm(size: (typeof SIZES)[number], f: Figures): Promise<void> {
  const touch = (size.mib << 20) / 4;
  const image = join(work, `ticker-${size.name}.bin`);
  writeFileSync(image, assembleRawGuest(TICKER, { TOUCH_BYTES: touch }));
  const config = join(work, `ticker-${size.name}.toml`);
  writeFileSync(
    config,
    `[payload]\nkernel = "${image}"\nformat = "raw"\n[memory]\nsize = "${size.mib}M"\n[serial]\nmode = "tty"\n`,
  );
  for (let rep = 0; rep < REPS; rep++) {
    // boot to first output, process level
    const t0 = performance.now();
    const booted = spawn([BUN, CLI, "run", config, "--log-level", "warn"]);
    f.bootToOutput.push((await until(booted.stdout, /R/, "bunvmm run's first output")) - t0);
    booted.proc.kill("SIGKILL");
    await booted.proc.exited;

    const dir = join(work, `bunvmm-${size.name}-${rep}`);
    {
      await using vm = await Vm.create(config, { serial: { mode: "off" }, logLevel: "warn" });
      await vm.boot();
      await vm.serial.waitFor("R.", READY_DEADLINE_MS);
      await vm.pause();
      f.snapshot.push((await vm.snapshot(dir)).ms);
    }
    {
      const t1 = performance.now();
      await using vm = await Vm.restore(dir, { serial: { mode: "off" }, logLevel: "warn", resume: true });
      f.restoreToRunning.push(performance.now() - t1);
      f.restoreToOutput.push((await until(() => vm.serial.text, /\./, "the restored guest's output")) - t1);
    }
    const cli = [[BUN, CLI], ...(haveDist ? [[DIST]] : [])];
    for (const [k, argv0] of cli.entries()) {
      const t2 = performance.now();
      const restored = spawn([...argv0!, "restore", dir, "--resume", "--log-level", "warn"]);
      const restoredAt = await until(restored.stdout, /\./, "bunvmm restore's first output");
      (k === 0 ? f.processRestoreToOutput : f.distRestoreToOutput).push(restoredAt - t2);
      restored.proc.kill("SIGKILL");
      await restored.proc.exited;
    }
    if (haveDist) {
      const t3 = performance.now();
      const distBooted = spawn([DIST, "run", config, "--log-level", "warn"]);
      f.distBootToOutput.push((await until(distBooted.stdout, /R/, "dist/bunvmm run's first output")) - t3);
      distBooted.proc.kill("SIGKILL");
      await distBooted.proc.exited;
    }
    rmSync(dir, { recursive: true, force: true });
    log(`bunvmm ${size.name} rep ${rep + 1}/${REPS} done`);
  }
}

function buildPvh(size: (typeof SIZES)[number]): string {
  const stem = join(work, `ticker-pvh-${size.name}`);
  sh([
    "as",
    "--32",
    "-I",
    GUEST_INCLUDE_DIR,
    "--defsym",
    "VCPUS=1",
    "--defsym",
    `TOUCH_BYTES=${(size.mib << 20) / 4}`,
    "-o",
    `${stem}.o`,
    TICKER,
    join(PVH, "pvh-entry.S"),
  ]);
  sh(["ld", "-m", "elf_i386", "-T", join(PVH, "guest.ld"), "-o", `${stem}.elf`, `${stem}.o`]);
  return `${stem}.elf`;
}

const qemuArgs = (exe: string, elf: string, mib: number, socket: string) => [
  exe,
  "-M",
  "microvm",
  "-accel",
  "kvm",
  "-m",
  String(mib),
  "-smp",
  "1",
  "-nodefaults",
  "-display",
  "none",
  "-serial",
  "stdio",
  "-qmp",
  `unix:${socket},server=on,wait=off`,
  "-kernel",
  elf,
];

async function connectQmp(socket: string): Promise<Qmp> {
  const deadline = performance.now() + QMP_DEADLINE_MS;
  for (;;) {
    try {
      return await Qmp.connect(socket, QMP_DEADLINE_MS);
    } catch (e) {
      if (performance.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 1)); // the socket is not there yet; bounded by the deadline
    }
  }
}

async function qmpUntil(
  qmp: Qmp,
  command: string,
  done: (r: Record<string, unknown>) => boolean,
  what: string,
): Promise<void> {
  const deadline = performance.now() + QMP_DEADLINE_MS;
  while (!done((await qmp.execute(command, undefined, QMP_DEADLINE_MS)) as Record<string, unknown>)) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

async function qemu(exe: string, size: (typeof SIZES)[number], f: Figures): Promise<void> {
  const elf = buildPvh(size);
  for (let rep = 0; rep < REPS; rep++) {
    const file = join(work, `qemu-${size.name}-${rep}.mig`);
    const socket = join(work, `q-${size.name}-${rep}.sock`);
    const t0 = performance.now();
    const src = spawn(qemuArgs(exe, elf, size.mib, socket));
    f.qemuBootToOutput.push((await until(src.stdout, /R/, "QEMU's first output")) - t0);
    await until(src.stdout, /R\./, "QEMU's guest ticking");
    const qmp = await connectQmp(socket);
    await qmp.execute("stop", undefined, QMP_DEADLINE_MS);
    const t1 = performance.now();
    await qmp.execute("migrate", { uri: `exec:cat > ${file}` }, QMP_DEADLINE_MS);
    await qmpUntil(qmp, "query-migrate", (r) => r.status === "completed", "QEMU's migration to a file");
    f.qemuSnapshot.push(performance.now() - t1);
    await qmp.execute("quit", undefined, QMP_DEADLINE_MS).catch(() => undefined);
    qmp.close();
    await stop(src.proc, 2000, 2000);

    const socket2 = join(work, `q2-${size.name}-${rep}.sock`);
    const t2 = performance.now();
    const dst = spawn([...qemuArgs(exe, elf, size.mib, socket2), "-incoming", `exec:cat ${file}`]);
    const qmp2 = await connectQmp(socket2);
    // The source was stopped, so the destination stays paused after loading: `cont`, as `--resume` does.
    await qmpUntil(
      qmp2,
      "query-status",
      (r) => r.status === "paused" || r.status === "running",
      "QEMU's incoming migration",
    );
    await qmp2.execute("cont", undefined, QMP_DEADLINE_MS);
    f.qemuRestoreToOutput.push((await until(dst.stdout, /\./, "QEMU's restored guest's output")) - t2);
    await qmp2.execute("quit", undefined, QMP_DEADLINE_MS).catch(() => undefined);
    qmp2.close();
    await stop(dst.proc, 2000, 2000);
    rmSync(file, { force: true });
    log(`QEMU ${size.name} rep ${rep + 1}/${REPS} done`);
  }
}

const exe = qemuExe();
const version = exe ? qemuVersion(exe) : null;
const results: Record<string, number | null> = {};
const rows: string[][] = [];
try {
  for (const size of SIZES) {
    const f: Figures = {
      snapshot: [],
      restoreToRunning: [],
      restoreToOutput: [],
      processRestoreToOutput: [],
      bootToOutput: [],
      distRestoreToOutput: [],
      distBootToOutput: [],
      qemuSnapshot: [],
      qemuRestoreToOutput: [],
      qemuBootToOutput: [],
    };
    await bunvmm(size, f);
    if (exe) await qemu(exe, size, f);
    const m = (xs: number[]) => (xs.length ? Number(median(xs).toFixed(2)) : null);
    Object.assign(results, {
      [`snapshot_ms_${size.name}`]: m(f.snapshot),
      [`restore_ms_${size.name}`]: m(f.restoreToRunning),
      [`restore_to_output_ms_${size.name}`]: m(f.restoreToOutput),
      [`process_restore_to_output_ms_${size.name}`]: m(f.processRestoreToOutput),
      [`boot_to_output_ms_${size.name}`]: m(f.bootToOutput),
      [`dist_process_restore_to_output_ms_${size.name}`]: m(f.distRestoreToOutput),
      [`dist_boot_to_output_ms_${size.name}`]: m(f.distBootToOutput),
      [`qemu_snapshot_ms_${size.name}`]: m(f.qemuSnapshot),
      [`qemu_restore_ms_${size.name}`]: m(f.qemuRestoreToOutput),
      [`qemu_boot_to_output_ms_${size.name}`]: m(f.qemuBootToOutput),
    });
    rows.push(
      [
        `${size.mib} MiB`,
        "bunvmm",
        ms(m(f.snapshot)),
        ms(m(f.restoreToRunning)),
        ms(m(f.restoreToOutput)),
        ms(m(f.processRestoreToOutput)),
        ms(m(f.bootToOutput)),
      ],
      ...(haveDist
        ? [
            [
              `${size.mib} MiB`,
              "bunvmm (dist/bunvmm)",
              "",
              "",
              "",
              ms(m(f.distRestoreToOutput)),
              ms(m(f.distBootToOutput)),
            ],
          ]
        : []),
      [
        `${size.mib} MiB`,
        exe ? `QEMU ${version} microvm` : "QEMU (not installed)",
        ms(m(f.qemuSnapshot)),
        "",
        "",
        ms(m(f.qemuRestoreToOutput)),
        ms(m(f.qemuBootToOutput)),
      ],
    );
  }
} finally {
  killAll();
}
const header = [
  "guest",
  "VMM",
  "snapshot ms",
  "restore to running ms (in-process)",
  "restore to first output ms (in-process)",
  "process restore to first output ms",
  "boot to first output ms",
];
console.log([header, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n"));
console.log(
  `\nmedians of ${REPS}; a quarter of guest RAM written by the guest before the snapshot; QEMU: migrate "exec:cat > FILE" of the stopped VM, then -incoming "exec:cat FILE" and cont`,
);
if (haveDist && statSync(DIST).mtimeMs < statSync(join(REPO, "src", "vmm", "vm.ts")).mtimeMs) {
  console.log("note: dist/bunvmm is older than src/vmm/vm.ts (npm run build to refresh it)");
}
console.log(JSON.stringify(results));
