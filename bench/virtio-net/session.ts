// One benchmark run of one VMM: a network namespace made for it (removed afterwards, whatever
// happened), a TAP in it, the host helper (host.py) on the TAP, the VMM booting the guest inside the
// namespace, and the phases driven from the guest's marker lines, each timestamped as it reaches the
// VMM's stdout. Threads: the bench's main thread.
import { unlinkSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";

/** Every namespace the bench makes starts with this, so leftovers are easy to find (and assert on). */
export const NETNS_PREFIX = "bunvmm-netbench-";
export const TAP = "nbtap0";
export const GUEST_MAC = "52:54:00:6e:62:01";
export const HOST_IP = "10.77.0.1";
export const GUEST_IP = "10.77.0.2";
export const PREFIX_LEN = 24;
export const PORTS = { tx: 7001, data: 7002, end: 7003, vsock: 5000 } as const;
/** The phases the guest marks, and the phase number the RX ones carry in their frames. */
export const NET_PHASES = ["tx64", "tx1514", "rx64", "rx1514"] as const;
export type NetPhase = (typeof NET_PHASES)[number];
export const FRAME_BYTES: Record<NetPhase, number> = { tx64: 64, tx1514: 1514, rx64: 64, rx1514: 1514 };
const RX_PHASE_NUMBER: Record<string, number> = { rx64: 1, rx1514: 2 };
const HOST_PY = join(import.meta.dir, "host.py");
/** How long a helper command (count, the answer to send) may take before the run fails. */
const HELPER_ANSWER_MS = 30_000;

export interface RunOptions {
  /** The VMM's command line (run inside the namespace); `vsockSocket` when it has a hybrid vsock. */
  command: string[];
  vsockSocket: string | null;
  rxSeconds: number;
  rxRate: number;
  vsockBytes: number;
  deadlineMs: number;
}

export interface PhaseResult {
  /** BEGIN to END marker, ms. */
  spanMs: number;
  /** Frames (bytes for vsock) the guest counted. */
  count: number;
}

export interface RunResult {
  phases: Partial<Record<NetPhase | "vsock", PhaseResult>>;
  /** Guest -> host frames the host's packet socket saw, by frame length, and the socket's drops. */
  hostSaw: Record<string, number>;
  hostDrops: number;
  /** Host -> guest frames the helper sent in each RX phase, and the rate it managed. */
  hostSent: Partial<Record<NetPhase, { sent: number; seconds: number }>>;
  lines: string[];
  done: string | null;
  exitCode: number | null;
  timedOut: boolean;
  stderr: string;
}

const live = new Set<Bun.Subprocess>();
const namespaces = new Set<string>();
function cleanUp(): void {
  for (const p of live) p.kill("SIGKILL");
  for (const ns of namespaces) Bun.spawnSync(["ip", "netns", "delete", ns], { stderr: "ignore" });
}
process.on("exit", cleanUp);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(sig, () => {
    cleanUp();
    process.exit(130);
  });
}

function sh(argv: string[]): void {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  if (r.exitCode !== 0)
    throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString().trim()}`);
}

/** Namespaces named with NETNS_PREFIX that exist now (from any bench process). */
export function leftoverNamespaces(): string[] {
  const r = Bun.spawnSync(["ip", "netns", "list"], { stdout: "pipe" });
  return r.stdout
    .toString()
    .split("\n")
    .map((l) => l.split(" ")[0]!)
    .filter((n) => n.startsWith(NETNS_PREFIX));
}

/** Splits a pipe into lines, calling onLine with the time (ms since t0) the chunk completing it arrived. */
function lines(stream: ReadableStream<Uint8Array>, t0: number, onLine: (text: string, ms: number) => void) {
  const decoder = new TextDecoder();
  let partial = "";
  return (async () => {
    try {
      for await (const chunk of stream) {
        const ms = performance.now() - t0;
        const parts = (partial + decoder.decode(chunk, { stream: true })).split("\n");
        partial = parts.pop() ?? "";
        for (const p of parts) onLine(p, ms);
      }
    } catch {
      // the child is gone
    }
    if (partial) onLine(partial, performance.now() - t0);
  })();
}

/** The host helper: commands in, one JSON answer a line out. */
class Helper {
  private readonly answers: unknown[] = [];
  private waiter: (() => void) | null = null;
  private stderr = "";
  constructor(private readonly proc: Bun.Subprocess<"pipe", "pipe", "pipe">) {
    void lines(proc.stdout, 0, (text) => {
      this.answers.push(JSON.parse(text));
      this.waiter?.();
    });
    void (async () => {
      for await (const c of proc.stderr) this.stderr += new TextDecoder().decode(c);
    })();
  }
  send(line: string): void {
    this.proc.stdin.write(`${line}\n`);
    this.proc.stdin.flush();
  }
  async answer<T>(): Promise<T> {
    const deadline = performance.now() + HELPER_ANSWER_MS;
    while (this.answers.length === 0) {
      if (performance.now() > deadline || this.proc.exitCode !== null)
        throw new Error(
          `the host helper did not answer: ${this.stderr.trim().split("\n").at(-1) ?? "no output"}`,
        );
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, 100); // re-check the deadline and the helper's exit
      });
    }
    return this.answers.shift() as T;
  }
}

/** Connects to the hybrid vsock socket, asks for the guest's port and writes `bytes` bytes. */
async function vsockSend(path: string, port: number, bytes: number): Promise<void> {
  const sock: Socket = connect(path);
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("error", reject);
  });
  sock.write(`CONNECT ${port}\n`);
  await new Promise<void>((resolve, reject) => {
    let got = "";
    sock.on("data", (d) => {
      got += d.toString();
      if (!got.includes("\n")) return;
      if (got.startsWith("OK ")) resolve();
      else reject(new Error(`vsock answered ${got.trim()}`));
    });
    sock.once("close", () => reject(new Error(`vsock closed before OK (${got.trim()})`)));
  });
  const chunk = new Uint8Array(64 * 1024).fill(0x5a);
  for (let sent = 0; sent < bytes && !sock.destroyed; sent += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, bytes - sent));
    // a VMM that exits closes the socket: stop waiting for room then
    if (!sock.write(part))
      await new Promise((r) => {
        sock.once("drain", r);
        sock.once("close", r);
      });
  }
  // the socket stays open: the guest stops reading once it has counted `bytes`; the VMM closes it
}

export async function runOnce(o: RunOptions): Promise<RunResult> {
  const ns = `${NETNS_PREFIX}${process.pid}-${namespaces.size}`;
  sh(["ip", "netns", "add", ns]);
  namespaces.add(ns);
  const inNs = (argv: string[]) => ["ip", "netns", "exec", ns, ...argv];
  try {
    sh(inNs(["ip", "tuntap", "add", "dev", TAP, "mode", "tap", "vnet_hdr"]));
    sh(inNs(["ip", "addr", "add", `${HOST_IP}/${PREFIX_LEN}`, "dev", TAP]));
    sh(inNs(["ip", "link", "set", TAP, "up"]));
    const helperProc = Bun.spawn(
      inNs([
        "python3",
        HOST_PY,
        TAP,
        GUEST_MAC,
        HOST_IP,
        GUEST_IP,
        String(PORTS.tx),
        String(PORTS.data),
        String(PORTS.end),
      ]),
      { stdin: "pipe", stdout: "pipe", stderr: "pipe" },
    );
    live.add(helperProc);
    const helper = new Helper(helperProc);
    await helper.answer(); // ready
    if (o.vsockSocket) {
      try {
        unlinkSync(o.vsockSocket);
      } catch {
        // not there: fine
      }
    }
    const result: RunResult = {
      phases: {},
      hostSaw: {},
      hostDrops: 0,
      hostSent: {},
      lines: [],
      done: null,
      exitCode: null,
      timedOut: false,
      stderr: "",
    };
    const t0 = performance.now();
    const vmm = Bun.spawn(inNs(o.command), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    live.add(vmm);
    const timer = setTimeout(() => {
      result.timedOut = true;
      vmm.kill("SIGKILL");
    }, o.deadlineMs);
    const begins = new Map<string, number>();
    const pending: Promise<unknown>[] = [];
    const errors: string[] = [];
    const out = lines(vmm.stdout, t0, (text, ms) => {
      result.lines.push(text);
      const m = /^(READY|BEGIN|END|STALL) (\S+)(?: (\d+))?$/.exec(text);
      if (text.startsWith("DONE ")) result.done = text.slice(5);
      if (!m) return;
      const [, what, phase] = m as unknown as [string, string, string];
      if (what === "READY" && phase in RX_PHASE_NUMBER) {
        helper.send(
          `send ${RX_PHASE_NUMBER[phase]} ${FRAME_BYTES[phase as NetPhase]} ${o.rxSeconds} ${o.rxRate}`,
        );
        pending.push(
          helper.answer<{ sent: number; seconds: number }>().then((a) => {
            result.hostSent[phase as NetPhase] = a;
          }),
        );
      } else if (what === "READY" && phase === "vsock" && o.vsockSocket) {
        pending.push(
          vsockSend(o.vsockSocket, PORTS.vsock, o.vsockBytes).catch((e) => errors.push(String(e))),
        );
      } else if (what === "BEGIN") {
        begins.set(phase, ms);
      } else if (what === "END" && begins.has(phase)) {
        result.phases[phase as NetPhase] = { spanMs: ms - begins.get(phase)!, count: Number(m[3]) };
        if (phase in RX_PHASE_NUMBER) helper.send("stop"); // ends the helper's END frames
      }
    });
    let stderr = "";
    const err = (async () => {
      for await (const c of vmm.stderr) stderr = (stderr + new TextDecoder().decode(c)).slice(-20_000);
    })();
    result.exitCode = await vmm.exited;
    clearTimeout(timer);
    live.delete(vmm);
    await Promise.all([out, err]);
    await Promise.allSettled(pending);
    result.stderr = stderr + errors.map((e) => `\n${e}`).join("");
    helper.send("count");
    const c = await helper.answer<{ tx: Record<string, number>; drops: number }>();
    result.hostSaw = c.tx;
    result.hostDrops = c.drops;
    helper.send("quit");
    await helperProc.exited;
    live.delete(helperProc);
    return result;
  } finally {
    for (const p of live) p.kill("SIGKILL");
    sh(["ip", "netns", "delete", ns]);
    namespaces.delete(ns);
  }
}
