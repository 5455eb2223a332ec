// The benches' shell helpers: run a build tool (throwing with its output when it fails) and check
// that a tool is installed.

/** A build step (as, ld, objcopy, gcc) may take this long before it counts as failed. */
const TOOL_TIMEOUT_MS = 20_000;

/** Runs `cmd`; throws with its exit code, stderr and stdout when it fails or times out. */
export function sh(cmd: string[], timeoutMs = TOOL_TIMEOUT_MS): void {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  if (!r.success) {
    throw new Error(`${cmd.join(" ")} failed (${r.exitCode}):\n${r.stderr.toString()}${r.stdout.toString()}`);
  }
}

/** True when `tool` is on PATH. */
export function haveTool(tool: string): boolean {
  return Bun.which(tool) !== null;
}
