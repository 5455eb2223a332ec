/**
 * CPU hotplug on real KVM: resize adds vCPUs the guest starts and removes vCPUs the guest ejects;
 * the rules of [hotplug-owner-bits] (eject only when marked, resize refused while a removal is pending); the power
 * button and reboot paths.
 */
import { describe, expect, test } from "bun:test";
import { ResizeError, Vm } from "bunvmm";
import { CPU_ENABLED, CPU_INSERTING, CPU_REMOVING } from "../../devices/cpu-hotplug-controller.ts";
import { rawGuestConfig, waitUntil } from "../helpers/guests.ts";

const COUNTERS = 0x9000;
const QUIET = { serial: { kind: "none" } as const };
const counter = (vm: Vm, cpu: number) => vm.memory.readU32(COUNTERS + 4 * cpu);

async function countsAgain(vm: Vm, cpus: number[], what: string) {
  const before = cpus.map((c) => counter(vm, c));
  await waitUntil(() => cpus.every((c, i) => counter(vm, c) > before[i]!), what, 20_000);
}

describe("Vm.resize", () => {
  test("adds vCPUs the guest starts, removes vCPUs the guest ejects, and reuses their slots", async () => {
    await using vm = await Vm.create(rawGuestConfig("hotplug", { boot: 1, max: 4 }), QUIET);
    await vm.boot();
    await countsAgain(vm, [0], "the boot vCPU scanning");

    await vm.resize(3);
    expect(vm.info().config.cpus.boot_vcpus).toBe(3); // vm.info reports the vCPUs present ...
    expect(vm.config.cpus.boot_vcpus).toBe(1); // ... the config the user gave stays as given
    await countsAgain(vm, [1, 2], "hot-added vCPUs 1 and 2 counting (the guest started them)");
    expect(vm.hotplugStatus()).toEqual([CPU_ENABLED, CPU_ENABLED, CPU_ENABLED, 0]); // inserts acked

    await vm.resize(1);
    await waitUntil(
      () => vm.hotplugStatus().every((s, cpu) => cpu === 0 || s === 0),
      "vCPUs 1 and 2 ejected and reaped",
    );
    expect(vm.vcpuStates()).toEqual(["RUNNING", "EXITED", "EXITED"]);

    await vm.resize(4); // slots 1 and 2 are reused, 3 is new
    await countsAgain(vm, [1, 2, 3], "vCPUs 1-3 counting after the second hot-add");
    expect(vm.vcpuStates()).toEqual(["RUNNING", "RUNNING", "RUNNING", "RUNNING"]);
    expect(vm.counters().hotplug.refused_ejects).toBe(0);
  });

  test("is refused while a removal is pending, and out of range", async () => {
    // The counter guest ignores hotplug, so a removal stays pending.
    await using vm = await Vm.create(rawGuestConfig("counter", { boot: 2, max: 4 }), QUIET);
    await vm.boot();
    await expect(vm.resize(0)).rejects.toThrow(
      new ResizeError("desired_vcpus = 0: expected an integer from 1 to max_vcpus (4)"),
    );
    await expect(vm.resize(5)).rejects.toThrow(
      "desired_vcpus = 5: expected an integer from 1 to max_vcpus (4)",
    );
    await vm.resize(1);
    expect(vm.hotplugStatus()[1]).toBe(CPU_ENABLED | CPU_REMOVING);
    await expect(vm.resize(2)).rejects.toThrow(
      "cannot resize while vCPU 1 is being removed; the guest has not ejected it yet",
    );
    await expect(vm.resize(3)).rejects.toThrow(ResizeError);
  });

  test("vCPUs added while paused park at once and run after resume", async () => {
    await using vm = await Vm.create(rawGuestConfig("hotplug", { boot: 1, max: 3 }), QUIET);
    await vm.boot();
    await countsAgain(vm, [0], "the boot vCPU scanning");
    await vm.pause();
    await vm.resize(3);
    expect(vm.hotplugStatus()[1]).toBe(CPU_ENABLED | CPU_INSERTING);
    await waitUntil(() => vm.vcpuStates().every((s) => s === "PARKED"), "new vCPUs parked");
    await vm.pause().catch((e) => expect(String(e)).toContain("cannot pause: the VM is Paused"));
    await vm.resume();
    await countsAgain(vm, [0, 1, 2], "all three vCPUs counting after resume");
  });
});

describe("Vm.powerButton and reboot", () => {
  test("the power button reaches the guest through the GED", async () => {
    await using vm = await Vm.create(rawGuestConfig("power-button"), QUIET);
    await vm.boot();
    await vm.serial.waitFor("ready\n", 10_000);
    await vm.powerButton();
    const exit = await vm.exited;
    expect(exit.reason).toBe("poweroff");
    expect(vm.serial.text).toBe("ready\nbutton\n");
  });

  test.each([
    ["i8042 command 0xfe", {}],
    ["ACPI reset register", { ACPI: 1 }],
  ])("a guest reset through the %s reboots the VM, like cloud-hypervisor", async (_source, defines) => {
    await using vm = await Vm.create(rawGuestConfig("reset", { defines }), QUIET);
    await vm.boot();
    await vm.serial.waitFor(/(resetting\n){3}/, 20_000);
    expect(vm.reboots).toBeGreaterThanOrEqual(2);
    expect(vm.state).toBe("Running");
  });

  test("reboot() restarts the payload with the vCPUs present now", async () => {
    await using vm = await Vm.create(rawGuestConfig("counter", { boot: 2, max: 2 }), QUIET);
    await vm.boot();
    await countsAgain(vm, [0, 1], "both vCPUs counting");
    await vm.reboot();
    expect(vm.reboots).toBe(1);
    expect(counter(vm, 0)).toBeLessThan(1_000_000); // fresh RAM
    await countsAgain(vm, [0, 1], "both vCPUs counting after the reboot");
    await vm.pause();
    await vm.resume();
  });
});
