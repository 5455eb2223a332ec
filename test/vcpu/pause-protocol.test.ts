/**
 * The pause protocol (docs/architecture.md) on real KVM: vCPUs that spin in the guest, exit on every
 * iteration, sit in HLT, or still wait for INIT/SIPI all park and resume; a paused guest makes no
 * progress; acknowledgements follow epochs across many cycles.
 */
import { describe, expect, test } from "bun:test";
import { Vm } from "bunvmm";
import { observationWindow, rawGuestConfig, waitUntil } from "../helpers/guests.ts";

const COUNTERS = 0x9000;
const QUIET = { serial: { kind: "none" } as const };

function counters(vm: Vm, n: number): number[] {
  return Array.from({ length: n }, (_, i) => vm.memory.readU32(COUNTERS + 4 * i));
}

describe("pause protocol", () => {
  test.each([
    ["spinning in the guest", 1, {}],
    ["spinning in the guest", 4, {}],
    ["exiting on every iteration", 4, { PIO: 1 }],
  ])("with %s on %i vCPU(s): a paused guest does not move, a resumed one does", async (_what, n, defines) => {
    await using vm = await Vm.create(rawGuestConfig("counter", { boot: n, defines }), QUIET);
    await vm.boot();
    await waitUntil(() => counters(vm, n).every((c) => c > 0), `all ${n} vCPUs counting`, 20_000);
    for (let round = 0; round < 3; round++) {
      await vm.pause();
      expect(vm.state).toBe("Paused");
      expect(vm.vcpuStates()).toEqual(Array(n).fill("PARKED"));
      const frozen = counters(vm, n);
      await observationWindow(20);
      expect(counters(vm, n)).toEqual(frozen);
      await vm.resume();
      expect(vm.vcpuStates()).toEqual(Array(n).fill("RUNNING"));
      await waitUntil(() => counters(vm, n).every((c, i) => c > frozen[i]!), "every vCPU counting again");
    }
  });

  test("halted vCPUs and vCPUs still waiting for INIT/SIPI pause and resume like the others", async () => {
    // 4 vCPUs: 0 counts, 1 halts (HALT_MASK bit 1), 2 counts, 3 is never started (START_APS = 2).
    await using vm = await Vm.create(
      rawGuestConfig("counter", { boot: 4, defines: { START_APS: 2, HALT_MASK: 0b10 } }),
      QUIET,
    );
    await vm.boot();
    await waitUntil(
      () => counters(vm, 3)[0]! > 0 && counters(vm, 3)[2]! > 0,
      "vCPUs 0 and 2 counting",
      20_000,
    );
    for (let i = 0; i < 50; i++) {
      await vm.pause();
      expect(vm.vcpuStates()).toEqual(["PARKED", "PARKED", "PARKED", "PARKED"]);
      await vm.resume();
    }
    expect(counters(vm, 4)[1]).toBe(0);
    expect(counters(vm, 4)[3]).toBe(0);
    const pauses = vm.counters().vcpus.map((c) => c.pauses);
    expect(pauses).toEqual([50, 50, 50, 50]);
  });

  test("1000 pause/resume cycles on 4 busy vCPUs never miss an acknowledgement", async () => {
    await using vm = await Vm.create(rawGuestConfig("counter", { boot: 4, defines: { PIO: 1 } }), QUIET);
    await vm.boot();
    await waitUntil(() => counters(vm, 4).every((c) => c > 0), "all 4 vCPUs counting", 20_000);
    const started = performance.now();
    for (let i = 0; i < 1000; i++) {
      await vm.pause();
      await vm.resume();
    }
    const perCycleMs = (performance.now() - started) / 1000;
    expect(vm.counters().vcpus.every((c) => c.pauses === 1000)).toBe(true);
    expect(vm.state).toBe("Running");
    console.info(`pause+resume cycle with 4 vCPUs: ${perCycleMs.toFixed(3)} ms mean`);
  });

  test("shutdown while paused kills parked vCPUs (KILL wins over PAUSE)", async () => {
    const vm = await Vm.create(rawGuestConfig("counter", { boot: 3 }), QUIET);
    await vm.boot();
    await waitUntil(() => counters(vm, 1)[0]! > 0, "vCPU 0 counting", 20_000);
    await vm.pause();
    const exit = await vm.shutdown();
    expect(exit.reason).toBe("shutdown");
    expect(vm.vcpuStates()).toEqual(["EXITED", "EXITED", "EXITED"]);
  });
});
