// Runs one contender process with a deadline, timing the guest's serial
// markers on stdout and the process's exit, and optionally sampling its RSS.

// Control characters, so that stray log text on stdout cannot look like them.
export const START_MARKER = "\x02"; // every guest's first serial byte (STX)
export const END_MARKER = "\x03"; // loop guests' last serial byte, before power-off (ETX)

export interface ChildOptions {
  /** Kill the child (SIGKILL) if it is still running after this long. */
  deadlineMs: number;
  /** Idle guests: once the start marker is seen, sample VmRSS until it settles, then stop the child. */
  sampleRss?: boolean;
}

export interface ChildResult {
  /** Spawn to the first stdout chunk containing the start marker, ms. */
  startMs: number | null;
  /** Spawn to the first stdout chunk containing the end marker, ms. */
  endMs: number | null;
  /** Spawn to process exit, ms. */
  exitMs: number;
  exitCode: number | null;
  /** Settled VmRSS in KiB (sampleRss only). */
  rssKiB: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

const STDOUT_GRACE_MS = 200; // keep reading the pipes this long after the exit
const TERM_GRACE_MS = 2000; // after sampling: SIGTERM, then SIGKILL this much later
const RSS_POLL_MS = 50;
const RSS_MIN_SETTLE_MS = 300; // always wait at least this long after the marker
const RSS_MAX_SETTLE_MS = 3000; // and never longer than this
const RSS_STABLE_SAMPLES = 4; // consecutive identical samples count as settled

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function vmRssKiB(pid: number): Promise<number | null> {
  try {
    const status = await Bun.file(`/proc/${pid}/status`).text();
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null; // the process is gone
  }
}

/** Polls VmRSS until it stops changing (bounded); returns the last sample. */
async function settledRss(pid: number, exited: () => boolean): Promise<number | null> {
  const start = performance.now();
  let last: number | null = null;
  let same = 0;
  while (!exited() && performance.now() - start < RSS_MAX_SETTLE_MS) {
    const kib = await vmRssKiB(pid);
    if (kib === null) break;
    same = kib === last ? same + 1 : 0;
    last = kib;
    if (same >= RSS_STABLE_SAMPLES && performance.now() - start >= RSS_MIN_SETTLE_MS) break;
    await sleep(RSS_POLL_MS);
  }
  return last;
}

/**
 * Reads a pipe to its end, calling onText for each chunk. The returned stop()
 * ends the read early (used shortly after the child exits, so a pipe still
 * held open by someone else cannot stall the bench).
 */
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

export async function runChild(cmd: string[], opts: ChildOptions): Promise<ChildResult> {
  const t0 = performance.now();
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, opts.deadlineMs);

  let exited = false;
  let startMs: number | null = null;
  let endMs: number | null = null;
  let rssKiB: number | null = null;
  let rssDone: Promise<void> = Promise.resolve();
  let stdout = "";
  let stderr = "";
  const out = drain(proc.stdout, (text) => {
    const now = performance.now() - t0;
    stdout += text;
    const start = stdout.indexOf(START_MARKER);
    if (start < 0) return;
    if (startMs === null) {
      startMs = now;
      if (opts.sampleRss) {
        rssDone = settledRss(proc.pid, () => exited).then((kib) => {
          rssKiB = kib;
          proc.kill("SIGTERM");
          setTimeout(() => exited || proc.kill("SIGKILL"), TERM_GRACE_MS).unref();
        });
      }
    }
    if (endMs === null && stdout.includes(END_MARKER, start)) endMs = now;
  });
  const err = drain(proc.stderr, (text) => (stderr += text));

  const exitCode = await proc.exited;
  const exitMs = performance.now() - t0;
  exited = true;
  clearTimeout(timer);
  const grace = setTimeout(() => {
    out.stop();
    err.stop();
  }, STDOUT_GRACE_MS);
  await Promise.all([out.done, err.done, rssDone]);
  clearTimeout(grace);
  return { startMs, endMs, exitMs, exitCode, rssKiB, timedOut, stdout, stderr };
}
