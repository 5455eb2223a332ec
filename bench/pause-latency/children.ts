// Every child process the bench starts is registered here and killed (SIGKILL) when the bench exits,
// however it exits: normally, by an exception, or by SIGINT/SIGTERM.

const live = new Set<Bun.Subprocess>();

export function track<T extends Bun.Subprocess>(proc: T): T {
  live.add(proc);
  void proc.exited.then(() => live.delete(proc));
  return proc;
}

export function killAll(): void {
  for (const p of live) p.kill("SIGKILL");
  live.clear();
}

process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

/** Waits for `proc` to exit, politely first: SIGTERM after `termMs` (if given), SIGKILL `killMs` later. */
export async function stop(proc: Bun.Subprocess, termMs: number, killMs: number): Promise<void> {
  const t1 = setTimeout(() => proc.kill("SIGTERM"), termMs);
  const t2 = setTimeout(() => proc.kill("SIGKILL"), termMs + killMs);
  await proc.exited;
  clearTimeout(t1);
  clearTimeout(t2);
}

/** Collects a pipe's text (for error messages); never blocks the child. */
export function collect(stream: ReadableStream<Uint8Array>): () => string {
  let text = "";
  const decoder = new TextDecoder();
  void (async () => {
    try {
      for await (const chunk of stream)
        text = (text + decoder.decode(chunk, { stream: true })).slice(-20_000);
    } catch {
      // the child is gone
    }
  })();
  return () => text;
}
