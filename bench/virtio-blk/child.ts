// Runs one contender process with a deadline and timestamps every line of its stdout as it arrives
// (the benchmark guest's phase markers), killing it at the deadline or when the bench exits.

export interface TimedLine {
  /** Spawn to the arrival of the chunk that completed this line, ms. */
  ms: number;
  text: string;
}

export interface ChildResult {
  lines: TimedLine[];
  exitCode: number | null;
  timedOut: boolean;
  stderr: string;
}

/** Keep reading the pipes this long after the exit (a pipe held open elsewhere must not stall the bench). */
const STDOUT_GRACE_MS = 200;

const live = new Set<Bun.Subprocess>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    for (const p of live) p.kill("SIGKILL");
    process.exit(130);
  });
}

/** Reads a pipe to its end, calling onText for each chunk; stop() ends the read early. */
function drain(stream: ReadableStream<Uint8Array>, onText: (text: string) => void) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  const done = (async () => {
    for (;;) {
      const r = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (r.done) return;
      onText(decoder.decode(r.value, { stream: true }));
    }
  })();
  return { done, stop: () => void reader.cancel().catch(() => {}) };
}

export async function runChild(cmd: string[], deadlineMs: number): Promise<ChildResult> {
  const t0 = performance.now();
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  live.add(proc);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, deadlineMs);
  const lines: TimedLine[] = [];
  let partial = "";
  let stderr = "";
  const out = drain(proc.stdout, (text) => {
    const ms = performance.now() - t0;
    const parts = (partial + text).split("\n");
    partial = parts.pop() ?? "";
    for (const p of parts) lines.push({ ms, text: p });
  });
  const err = drain(proc.stderr, (text) => {
    stderr += text;
  });
  const exitCode = await proc.exited;
  live.delete(proc);
  clearTimeout(timer);
  const grace = setTimeout(() => {
    out.stop();
    err.stop();
  }, STDOUT_GRACE_MS);
  await Promise.all([out.done, err.done]);
  clearTimeout(grace);
  if (partial) lines.push({ ms: performance.now() - t0, text: partial });
  return { lines, exitCode, timedOut, stderr };
}
