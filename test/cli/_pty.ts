/**
 * A command on a fresh pseudo-terminal (cooked, echo on), typed at by steps: the Bun side of _pty.py,
 * for the console and colour tests.
 */
import { expect } from "bun:test";
import { join } from "node:path";

const PTY_DRIVER = join(import.meta.dir, "_pty.py");
/** Deadline the driver puts on the whole run in the terminal. */
const PTY_DEADLINE_S = 30;

/** One step of _pty.py (its doc comment says what each does). */
export type Step =
  | ["expect", string]
  | ["send", string]
  | ["snapshot"]
  | ["signal", string]
  | ["hangup"]
  | ["exit"];
/** The terminal's local modes: local echo, line editing, signals from keys. */
export interface Modes {
  echo: boolean;
  icanon: boolean;
  isig: boolean;
}
/** What _pty.py saw; `stderr` is the command's. */
export interface PtyRun {
  segments: string[];
  rest: string;
  snapshots: Modes[];
  exit: number | null;
  signal: string | null;
  /** null after a hang-up: the terminal is gone. */
  restored: boolean | null;
  after: Modes | null;
  error?: string;
  stderr: string;
}

/** Runs `argv` on a new terminal through _pty.py; resolves with what the driver saw. */
export async function inTerminal(
  argv: string[],
  steps: Step[],
  env: Record<string, string | undefined> = process.env,
): Promise<PtyRun> {
  const proc = Bun.spawn(["python3", PTY_DRIVER, String(PTY_DEADLINE_S), ...argv], {
    env,
    stdin: new TextEncoder().encode(JSON.stringify(steps)),
    stdout: "pipe",
    stderr: "pipe",
  });
  const killer = setTimeout(() => proc.kill("SIGKILL"), (PTY_DEADLINE_S + 30) * 1000); // beyond the driver's own deadline
  const [stdout, stderr] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  await proc.exited;
  clearTimeout(killer);
  expect(proc.exitCode).toBe(0); // the driver itself worked
  return { ...JSON.parse(stdout), stderr };
}

export const RAW: Modes = { echo: false, icanon: false, isig: false };
export const COOKED: Modes = { echo: true, icanon: true, isig: true };
