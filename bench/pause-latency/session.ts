// A contender's VM for one cell (one guest mode, one vCPU count), kept alive while the contenders
// take turns, and the CPU accounting that says how busy the machine was with other work meanwhile.
import { readFileSync } from "node:fs";
import type { CycleOps } from "./cycles.ts";
import { sleep } from "./cycles.ts";

/** A booted VM whose every vCPU has been seen counting. */
export interface Session extends CycleOps {
  /** The counters (COUNTERS + 4 * id) of every vCPU. */
  counters(): Promise<number[]>;
  /** How many pause operations the VMM reports having carried out, per vCPU (or for the VM). */
  pausesSeen(): Promise<number[]>;
  /** The contender's process when it is a child (for CPU accounting), else null (this process). */
  readonly pid: number | null;
  close(): Promise<void>;
}

/** Counts the pause operations issued through it, to check against what the VMM saw. */
export class CountingOps implements CycleOps {
  pauses = 0;
  constructor(private readonly inner: CycleOps) {}
  pause(): Promise<unknown> {
    this.pauses++;
    return this.inner.pause();
  }
  resume(): Promise<unknown> {
    return this.inner.resume();
  }
}

/** Where counter.S, hotplug.S and mmio-spin.S keep vCPU i's counter. */
export const COUNTERS = 0x9000;
/** Boot to every vCPU counting; 8 emulated vCPUs start in well under a second here. */
export const READY_DEADLINE_MS = 30_000;
const POLL_MS = 2;

/**
 * Polls `read` until each of the `n` counters is non-zero and has moved once more since; throws at the
 * deadline, naming the counters it saw.
 */
export async function waitCounting(
  read: () => Promise<number[]>,
  n: number,
  deadlineMs: number,
  what: string,
) {
  const deadline = performance.now() + deadlineMs;
  let first: number[] | null = null;
  let last: number[] = [];
  for (;;) {
    last = (await read()).slice(0, n);
    if (first === null && last.length === n && last.every((c) => c > 0)) first = last;
    else if (first && last.every((c, i) => c !== first![i])) return;
    if (performance.now() > deadline) {
      throw new Error(
        `${what}: not all ${n} vCPUs counting within ${deadlineMs} ms (counters ${JSON.stringify(last)})`,
      );
    }
    await sleep(POLL_MS); // bounded by the deadline above
  }
}

// ---- CPU accounting: how many cores other processes kept busy ----

/** USER_HZ: the unit of /proc/stat and /proc/PID/stat times (100 on Linux x86_64). */
const CLK_TCK = 100;

/** Busy ticks of the whole machine (guest time is already inside user). */
function machineBusyTicks(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = f;
  return user! + nice! + system! + irq! + softirq!;
}

/** utime + stime (+ reaped children's, for `self`) of a process, in ticks; 0 once it is gone. */
function processTicks(pid: number | "self"): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number); // f[0] is field 3 (state)
    return f[11]! + f[12]! + (pid === "self" ? f[13]! + f[14]! : 0);
  } catch {
    return 0;
  }
}

/** A running tally of wall time and other processes' CPU time, over the intervals between start/stop. */
export class OtherLoad {
  private wallMs = 0;
  private otherTicks = 0;
  private mark: { t: number; busy: number; own: number; pids: (number | null)[] } | null = null;

  private own(pids: (number | null)[]): number {
    return processTicks("self") + pids.reduce<number>((s, p) => s + (p === null ? 0 : processTicks(p)), 0);
  }

  /** `pids`: the live children whose CPU time is ours, not others'. */
  start(pids: (number | null)[]): void {
    this.mark = { t: performance.now(), busy: machineBusyTicks(), own: this.own(pids), pids };
  }

  stop(): void {
    const m = this.mark;
    if (!m) return;
    this.wallMs += performance.now() - m.t;
    this.otherTicks += machineBusyTicks() - m.busy - (this.own(m.pids) - m.own);
    this.mark = null;
  }

  /** Mean number of cores other processes kept busy, or null before any interval. */
  cores(): number | null {
    return this.wallMs > 0 ? Math.max(0, ((this.otherTicks / CLK_TCK) * 1000) / this.wallMs) : null;
  }
}
