/** Runs the bunvmm CLI (from source, or a built binary) as a user would, with a deadline. */
import { expect } from "bun:test";
import { join } from "node:path";

export const REPO = join(import.meta.dir, "..", "..");
export const BUN = join(REPO, "node_modules", ".bin", "bun");
export const SOURCE_CLI = [BUN, join(REPO, "src", "cli", "main.ts")];

export interface CliResult {
  exitCode: number | null;
  signal: Bun.Subprocess["signalCode"];
  stdout: string;
  stderr: string;
}

/** Runs `argv` to completion or kills it at the deadline (then exitCode is null and signal is set). */
export async function runCli(
  argv: string[],
  opts: { timeoutMs?: number; cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const proc = Bun.spawn(argv, {
    cwd: opts.cwd ?? REPO,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    env: { ...process.env, ...opts.env },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 60_000); // deadline
  const [stdout, stderr] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  await proc.exited;
  clearTimeout(timer);
  return { exitCode: proc.exitCode, signal: proc.signalCode, stdout, stderr };
}

/** A user error: exit 1, exactly one stderr line containing `text`, no stack trace. */
export function expectOneLineError(r: { exitCode: number | null; stderr: string }, text: string): void {
  expect(r.exitCode).toBe(1);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(text);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}
