/**
 * The founding promise under stress, on real KVM: thousands of pause/resume pairs at random gaps,
 * interleaved with resize storms and guest ejects, while every vCPU hammers the CPU hotplug
 * registers like Linux's CSCN; some vCPUs halted, some never started (waiting for INIT/SIPI). A
 * watchdog fails the test with a diagnostic if any operation outlives its deadline. Then a hostile
 * guest writes random values at random widths into the hotplug and GED registers, and the VMM must
 * stay healthy.
 *
 * Sizing: BUNVMM_STRESS_PAIRS pause/resume pairs per vCPU count (default 2500, so 10,000 over 1, 2, 4
 * and 8 vCPUs) and BUNVMM_FUZZ_SECONDS of fuzzing (default 5; `npm run test:stress` runs 60).
 */
import { describe, expect, test } from "bun:test";
import { ResizeError, Vm } from "bunvmm";
import { rawGuestConfig, waitUntil } from "../helpers/guests.ts";
import { Rng, randomGap } from "../helpers/rng.ts";

const PAIRS = Number(process.env.BUNVMM_STRESS_PAIRS ?? 2500);
const FUZZ_SECONDS = Number(process.env.BUNVMM_FUZZ_SECONDS ?? 5);
/** Watchdog: far above the VMM's own 1 s deadlines, so it only fires on a real hang. */
const WATCHDOG_MS = 5000;
const COUNTERS = 0x9000;
const QUIET = { serial: { kind: "none" } as const };

/** Runs one lifecycle operation under the watchdog; a hang fails the test with where every vCPU was. */
async function guarded<T>(vm: Vm, what: string, op: () => Promise<T>): Promise<T> {
  let timer: Timer | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `watchdog: ${what} did not finish within ${WATCHDOG_MS} ms; state ${vm.state}, vCPUs ${vm.vcpuStates().join(",")}, hotplug ${vm.hotplugStatus().join(",")}`,
          ),
        ),
      WATCHDOG_MS,
    );
  });
  try {
    return await Promise.race([op(), watchdog]);
  } finally {
    clearTimeout(timer);
  }
}

const counters = (vm: Vm, n: number) =>
  Array.from({ length: n }, (_, i) => vm.memory.readU32(COUNTERS + 4 * i));

interface StormStats {
  pairs: number;
  resizes: number;
  refused: number;
  pauseMs: number[];
  frozenChecks: number;
}

async function storm(vm: Vm, max: number, rng: Rng): Promise<StormStats> {
  const stats: StormStats = { pairs: 0, resizes: 0, refused: 0, pauseMs: [], frozenChecks: 0 };
  while (stats.pairs < PAIRS) {
    const roll = rng.int(100);
    if (roll < 4 && max > 1) {
      // A resize storm step: towards max or back to 1 (the guest ejects the removed CPUs itself).
      const target = rng.int(2) === 0 ? max : 1 + rng.int(max);
      try {
        await guarded(vm, `resize(${target})`, () => vm.resize(target));
        stats.resizes++;
      } catch (e) {
        if (!(e instanceof ResizeError)) throw e; // a removal still pending: refused, as it must be
        stats.refused++;
      }
      continue;
    }
    const started = performance.now();
    await guarded(vm, `pause #${stats.pairs}`, () => vm.pause());
    stats.pauseMs.push(performance.now() - started);
    if (stats.pairs % 250 === 0) {
      // While paused the guest makes no progress (sampled: the observation costs time).
      const frozen = counters(vm, max);
      await randomGap(rng, 2);
      expect(counters(vm, max)).toEqual(frozen);
      stats.frozenChecks++;
    }
    if (roll < 8 && max > 1) {
      // Resize while paused: new vCPUs must park at once.
      try {
        await guarded(vm, "resize while paused", () => vm.resize(1 + rng.int(max)));
        stats.resizes++;
      } catch (e) {
        if (!(e instanceof ResizeError)) throw e;
        stats.refused++;
      }
    }
    await randomGap(rng, 1);
    await guarded(vm, `resume #${stats.pairs}`, () => vm.resume());
    stats.pairs++;
    await randomGap(rng, 1);
  }
  return stats;
}

const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0;

describe("pause storm", () => {
  test.each([
    // [vCPUs, HALT_MASK, START_APS]: some vCPUs halted, some never started by the guest.
    [1, 0, 0],
    [2, 0, 1],
    [4, 0b1000, 2],
    [8, 0b1000_0000, 5],
  ])(
    "%i vCPU(s): pause/resume pairs with resize storms and guest ejects never hang",
    async (max, haltMask, startAps) => {
      const seed = Number(process.env.BUNVMM_STRESS_SEED ?? 0x5eed) + max;
      const rng = new Rng(seed);
      await using vm = await Vm.create(
        rawGuestConfig("hotplug", { boot: max, max, defines: { HALT_MASK: haltMask, START_APS: startAps } }),
        QUIET,
      );
      await vm.boot();
      await waitUntil(() => counters(vm, 1)[0]! > 0, "the boot vCPU scanning", 20_000);
      const stats = await storm(vm, max, rng);
      // Healthy at the end: the boot vCPU (never removed, never halted) counts after a last resume.
      if (vm.state === "Paused") await vm.resume();
      const before = counters(vm, 1)[0]!;
      await waitUntil(() => counters(vm, 1)[0]! > before, "the boot vCPU counting after the storm", 20_000);
      expect(stats.pairs).toBe(PAIRS);
      expect(vm.counters().hotplug.refused_ejects).toBe(0);
      console.info(
        `${max} vCPU(s), seed ${seed}: ${stats.pairs} pairs, ${stats.resizes} resizes (${stats.refused} refused while a removal was pending), ` +
          `${stats.frozenChecks} frozen checks; pause p50 ${percentile(stats.pauseMs, 0.5).toFixed(3)} ms, p99 ${percentile(stats.pauseMs, 0.99).toFixed(3)} ms, max ${Math.max(...stats.pauseMs).toFixed(3)} ms`,
      );
      const exit = await guarded(vm, "shutdown", () => vm.shutdown());
      expect(exit.reason).toBe("shutdown");
    },
    600_000,
  );

  test("a guest writing random values at random widths to the hotplug and GED registers leaves the VMM healthy", async () => {
    const rng = new Rng(0xf022);
    await using vm = await Vm.create(rawGuestConfig("fuzz-hotplug", { boot: 4, max: 6 }), QUIET);
    await vm.boot();
    await waitUntil(() => counters(vm, 4).every((c) => c > 0), "all 4 vCPUs fuzzing", 20_000);
    const until = performance.now() + FUZZ_SECONDS * 1000;
    let cycles = 0;
    while (performance.now() < until) {
      await guarded(vm, "pause under fuzz", () => vm.pause());
      await guarded(vm, "resume under fuzz", () => vm.resume());
      if (rng.int(10) === 0) {
        await guarded(vm, "resize under fuzz", () => vm.resize(1 + rng.int(6))).catch((e) => {
          if (!(e instanceof ResizeError)) throw e;
        });
      }
      cycles++;
      await randomGap(rng, 5);
    }
    // The state stayed consistent: only defined status bits, CPU 0 never ejected, vCPU 0 alive.
    expect(vm.hotplugStatus().every((s) => (s & ~0b111) === 0)).toBe(true);
    expect(vm.hotplugStatus()[0]! & 1).toBe(1);
    const c = vm.counters();
    expect(c.hotplug.ignored_accesses).toBeGreaterThan(0); // the guest did hit wrong widths
    expect(vm.vcpuStates()[0]).toBe("RUNNING");
    const before = counters(vm, 1)[0]!;
    await waitUntil(() => counters(vm, 1)[0]! > before, "vCPU 0 still fuzzing", 20_000);
    console.info(
      `fuzz ${FUZZ_SECONDS} s: ${cycles} pause/resume cycles, ${c.hotplug.ignored_accesses} ignored accesses, ${c.hotplug.refused_ejects} refused ejects`,
    );
    expect((await vm.shutdown()).reason).toBe("shutdown");
  }, 600_000);
});
