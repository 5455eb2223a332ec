// Fairness under frequent pause/resume: how the guest's progress is shared among its vCPUs while the
// library cycles pause and resume, beside the same VM running free. With more busy vCPUs than cores
// the vCPU a resume wakes first tends to keep its core for the whole run window; resume's rotating
// start ([fair-resume], src/vmm/worker-pool.ts) is meant to spread that.
//
//   bun bench/pause-latency/fairness.ts [--vcpus=8] [--seconds=3] [--seed=1]
//
// Guest: test/guests/counter.S (PIO=0), every vCPU increments its own counter in RAM, no exits. One
// window free-running, then one window cycling (a random 1-4 ms gap running, pause, a 1-4 ms gap
// parked, resume). Printed: each vCPU's share of the increments in each window, the largest over the
// smallest share, and the load (other processes share this machine); last line: one JSON object.
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { buildRaw } from "./build.ts";
import { librarySession } from "./bunvmm.ts";
import { prng, sleep } from "./cycles.ts";

const arg = (name: string, dflt: number): number => {
  const a = Bun.argv.find((s) => s.startsWith(`--${name}=`));
  const v = a ? Number(a.slice(name.length + 3)) : dflt;
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const VCPUS = Math.floor(arg("vcpus", 8));
const WINDOW_MS = arg("seconds", 3) * 1000;
const SEED = Math.floor(arg("seed", 1));
const GAP_MIN_MS = 1;
const GAP_MAX_MS = 4;

/** Each vCPU's share of the total increments between two counter snapshots. */
function shares(before: number[], after: number[]): number[] {
  const deltas = after.map((a, i) => (a - before[i]! + 2 ** 32) % 2 ** 32);
  const total = deltas.reduce((s, d) => s + d, 0);
  return deltas.map((d) => (total === 0 ? 0 : d / total));
}

const spread = (xs: number[]) => Math.max(...xs) / Math.max(Math.min(...xs), Number.EPSILON);
const pct = (xs: number[]) => xs.map((x) => `${(100 * x).toFixed(1)}%`).join(" ");

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-fairness-"));
  const session = await librarySession(buildRaw(dir, "counter"), VCPUS);
  try {
    const load = loadavg()[0]!.toFixed(2);
    let before = await session.counters();
    await sleep(WINDOW_MS);
    let after = await session.counters();
    const free = shares(before, after);

    const gap = prng(SEED);
    const wait = () => sleep(GAP_MIN_MS + gap() * (GAP_MAX_MS - GAP_MIN_MS));
    let cycles = 0;
    before = await session.counters();
    const end = performance.now() + WINDOW_MS;
    while (performance.now() < end) {
      await wait();
      await session.pause();
      await wait();
      await session.resume();
      cycles++;
    }
    after = await session.counters();
    const cycling = shares(before, after);

    console.log(
      `${VCPUS} vCPUs on ${navigator.hardwareConcurrency} cores, ${WINDOW_MS} ms windows, load ${load}`,
    );
    console.log(`free-running: ${pct(free)} (largest/smallest ${spread(free).toFixed(2)})`);
    console.log(
      `cycling (${cycles} cycles): ${pct(cycling)} (largest/smallest ${spread(cycling).toFixed(2)})`,
    );
    console.log(
      JSON.stringify({
        vcpus: VCPUS,
        cycles,
        load_1min: Number(load),
        free_shares: free.map((x) => Number(x.toFixed(4))),
        cycling_shares: cycling.map((x) => Number(x.toFixed(4))),
        free_spread: Number(spread(free).toFixed(2)),
        cycling_spread: Number(spread(cycling).toFixed(2)),
      }),
    );
  } finally {
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
