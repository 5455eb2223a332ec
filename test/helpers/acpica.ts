/**
 * Test helpers around ACPICA's tools (Debian's acpica-tools: iasl and acpiexec 20200925): run them in a
 * temp dir and read their verdicts. CI installs the package; a missing tool fails the test, with the fix.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The path of `tool`, or a thrown error that says how to install it. */
export function requireTool(tool: "iasl" | "acpiexec"): string {
  const path = Bun.which(tool);
  if (path === null) throw new Error(`${tool} not found: apt-get install acpica-tools`);
  return path;
}

/** What a tool printed (stdout then stderr) and its exit status. */
export interface ToolRun {
  readonly exitCode: number;
  readonly output: string;
}

/** How long one iasl or acpiexec run may take: the slowest (acpiexec, 255 CPUs) takes about 3 s. */
export const TOOL_DEADLINE_MS = 60_000;

/** Runs `tool args` in `cwd`, with `input` on its stdin if given; throws if it outlives TOOL_DEADLINE_MS. */
export function runTool(
  tool: "iasl" | "acpiexec",
  args: readonly string[],
  cwd: string,
  input?: string,
): ToolRun {
  const stdin = input === undefined ? "ignore" : new TextEncoder().encode(input);
  const run = Bun.spawnSync([requireTool(tool), ...args], {
    cwd,
    stdin,
    stdout: "pipe",
    stderr: "pipe",
    timeout: TOOL_DEADLINE_MS,
  });
  if (run.exitedDueToTimeout)
    throw new Error(`${tool} ${args.join(" ")} did not finish within ${TOOL_DEADLINE_MS} ms`);
  return { exitCode: run.exitCode ?? -1, output: `${run.stdout.toString()}${run.stderr.toString()}` };
}

/** iasl's compile verdict: "Compilation successful. 0 Errors, 0 Warnings, 0 Remarks[, N Optimizations]". */
export interface IaslSummary {
  readonly errors: number;
  readonly warnings: number;
  readonly remarks: number;
}

const SUMMARY = /(\d+) Errors, (\d+) Warnings, (\d+) Remarks/;

/** Parses iasl's compile summary; throws with the whole output if there is none. */
export function iaslSummary(run: ToolRun): IaslSummary {
  const match = SUMMARY.exec(run.output);
  if (match === null) throw new Error(`no iasl summary in:\n${run.output}`);
  return { errors: Number(match[1]), warnings: Number(match[2]), remarks: Number(match[3]) };
}

/** Lines that report a problem: iasl's "Error nnnn"/"Warning nnnn", ACPICA's "ACPI Error"/"ACPI Warning"/"AE_". */
export function problemLines(output: string): string[] {
  return output
    .split("\n")
    .filter((line) => /\b(error|warning)\b|AE_[A-Z_]+/i.test(line) && !SUMMARY.test(line));
}

/** A fresh temp dir; `using` removes it at the end of the test. */
export function tempDir(prefix: string): { readonly path: string } & Disposable {
  const path = mkdtempSync(join(tmpdir(), `bunvmm-${prefix}-`));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

/** Writes `bytes` as `dir/file` and returns the file name. */
export function writeDat(dir: string, file: string, bytes: Uint8Array): string {
  writeFileSync(join(dir, file), bytes);
  return file;
}

/** Parses a hex fixture: whitespace-separated bytes, `//` comments allowed at line ends. */
export function hex(...lines: string[]): Uint8Array {
  const text = lines.map((l) => l.replace(/\/\/.*$/, "")).join(" ");
  const pairs = text.split(/\s+/).filter((p) => p !== "");
  return Uint8Array.from(pairs, (p) => {
    if (!/^[0-9a-fA-F]{2}$/.test(p)) throw new Error(`bad hex byte ${p}`);
    return Number.parseInt(p, 16);
  });
}

/** Bytes as spaced hex, so a failed comparison shows where the bytes part. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}
