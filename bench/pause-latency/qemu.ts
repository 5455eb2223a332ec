// QEMU microvm on the same kind of guest, driven over QMP: `stop` and `cont`, each timed from writing
// the command to reading its reply.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { collect, stop, track } from "./children.ts";
import { sleep } from "./cycles.ts";
import { Qmp } from "./qmp.ts";
import { COUNTERS, READY_DEADLINE_MS, type Session, waitCounting } from "./session.ts";

/** One QMP command (a `stop` answers in milliseconds). */
const COMMAND_DEADLINE_MS = 10_000;

export function qemuExe(): string | null {
  return Bun.which("qemu-system-x86_64");
}

export function qemuVersion(exe: string): string | null {
  const r = Bun.spawnSync([exe, "--version"], { stdout: "pipe", timeout: 10_000 });
  return /version (\d+\.\d+(?:\.\d+)?)/.exec(r.stdout.toString())?.[1] ?? null;
}

function qemuCommand(exe: string, elf: string, vcpus: number, socket: string): string[] {
  return [
    exe,
    "-M",
    "microvm",
    "-accel",
    "kvm",
    "-smp",
    String(vcpus),
    "-m",
    "64",
    "-nographic",
    "-nodefaults",
    "-qmp",
    `unix:${socket},server=on,wait=off`,
    "-kernel",
    elf,
  ];
}

/** The first `n` counters, through HMP's `xp` (a physical memory dump) over QMP. */
async function counters(qmp: Qmp, n: number): Promise<number[]> {
  const out = String(
    await qmp.execute(
      "human-monitor-command",
      { "command-line": `xp /${n}wx 0x${COUNTERS.toString(16)}` },
      COMMAND_DEADLINE_MS,
    ),
  );
  return out
    .split("\n")
    .flatMap(
      (line) =>
        line
          .split(":")
          .slice(1)
          .join(":")
          .match(/0x[0-9a-f]+/g) ?? [],
    )
    .map(Number);
}

/** QEMU booting `elf` on `vcpus` vCPUs, its QMP negotiated, every vCPU counting. */
export async function qemuSession(exe: string, dir: string, elf: string, vcpus: number): Promise<Session> {
  const socket = join(dir, `qmp-${vcpus}-${Math.random().toString(36).slice(2, 8)}.sock`);
  const cmd = qemuCommand(exe, elf, vcpus, socket);
  const proc = track(Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
  const stderr = collect(proc.stderr);
  collect(proc.stdout);
  const fail = (why: string) =>
    new Error(`${why}: ${cmd.join(" ")}\n${stderr().trimEnd().split("\n").slice(-6).join("\n")}`);
  let qmp: Qmp | null = null;
  const close = async () => {
    await qmp?.execute("quit", undefined, COMMAND_DEADLINE_MS).catch(() => undefined);
    qmp?.close();
    await stop(proc, 2000, 2000);
  };
  try {
    const deadline = performance.now() + READY_DEADLINE_MS;
    while (!qmp) {
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw fail(`exited (${proc.exitCode ?? proc.signalCode})`);
      if (performance.now() > deadline) throw fail(`no QMP on ${socket} within ${READY_DEADLINE_MS} ms`);
      // The socket file can appear a moment before QEMU accepts on it: then connect fails, and we retry.
      if (existsSync(socket)) qmp = await Qmp.connect(socket, COMMAND_DEADLINE_MS).catch(() => null);
      if (!qmp) await sleep(5); // bounded by the deadline above
    }
    const q = qmp;
    await waitCounting(() => counters(q, vcpus), vcpus, READY_DEADLINE_MS, "QEMU");
    q.events.clear();
    return {
      pid: proc.pid,
      pause: () => q.execute("stop", undefined, COMMAND_DEADLINE_MS),
      resume: () => q.execute("cont", undefined, COMMAND_DEADLINE_MS),
      counters: () => counters(q, vcpus),
      // The STOP event is emitted before stop's reply, so none is still in flight here.
      pausesSeen: async () => [q.events.get("STOP") ?? 0],
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
