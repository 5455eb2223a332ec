/** The library API (src/index.ts) on real KVM with real guests: what a user's own test suite does. */
import { describe, expect, test } from "bun:test";
import { LifecycleError, Vm } from "bunvmm";
import { allowed } from "../../src/vmm/vm.ts";
import { rawGuestConfig, waitUntil } from "../helpers/guests.ts";

const QUIET = { serial: { kind: "none" } as const, logger: undefined };

describe("Vm", () => {
  test("boots the built-in demo: every vCPU greets with its APIC id, then the guest powers off", async () => {
    await using vm = await Vm.create(undefined, QUIET);
    expect(vm.state).toBe("Created");
    await vm.boot();
    expect(vm.state).toBe("Running");
    for (const id of [0, 1, 2, 3])
      await vm.serial.waitFor(`hello from the vCPU with APIC id ${id}\n`, 30_000);
    const exit = await vm.exited;
    expect(exit.reason).toBe("poweroff");
    expect(exit.detail).toContain("ACPI sleep control S5");
    expect(vm.state).toBe("Shutdown");
    expect(vm.serial.text).toContain("all 4 vCPUs said hello");
    const counters = vm.counters();
    expect(counters.vcpus).toHaveLength(4);
    expect(counters.serial.bytes_out).toBe(Buffer.byteLength(vm.serial.text));
    expect(counters.vcpus[0]!.io_exits).toBeGreaterThan(50);
  });

  test("serial.stream() replays earlier output and ends when the VM stops", async () => {
    await using vm = await Vm.create(undefined, QUIET);
    await vm.boot();
    await vm.serial.waitFor("APIC id 0", 30_000);
    const chunks: string[] = [];
    for await (const chunk of vm.serial.stream()) chunks.push(new TextDecoder().decode(chunk));
    expect(chunks.join("")).toBe(vm.serial.text);
    expect(chunks.join("")).toContain("powering off");
  });

  test("a triple fault stops the VM with RIP, instruction bytes and registers", async () => {
    await using vm = await Vm.create(rawGuestConfig("triple-fault"), QUIET);
    await vm.boot();
    const exit = await vm.exited;
    expect(exit.reason).toBe("crash");
    expect(exit.detail).toContain("triple-faulted (KVM_EXIT_SHUTDOWN)");
    expect(exit.detail).toMatch(/RIP 0x1000e .*bytes 0f 0b/);
    expect(exit.crash?.registers.join("\n")).toMatch(/rip=0x1000e/);
    expect(vm.serial.text).toBe("T");
  });

  test("an instruction KVM cannot emulate stops the VM with an emulation-failure report", async () => {
    await using vm = await Vm.create(rawGuestConfig("unsupported-instruction"), QUIET);
    await vm.boot();
    const exit = await vm.exited;
    expect(exit.reason).toBe("crash");
    expect(exit.detail).toContain("KVM_EXIT_INTERNAL_ERROR, emulation failure");
    expect(exit.detail).toContain("bytes d9 ee"); // fldz
  });

  test("serial.write() reaches the guest's receiver", async () => {
    await using vm = await Vm.create(rawGuestConfig("echo"), QUIET);
    await vm.boot();
    await vm.serial.waitFor("ready\n", 10_000);
    expect(vm.serial.write("hello")).toBe(5);
    await vm.serial.waitFor("HELLO", 10_000);
    vm.serial.write("q");
    expect((await vm.exited).reason).toBe("poweroff");
  });

  test("operations the state machine refuses throw LifecycleError naming the state", async () => {
    const vm = await Vm.create(rawGuestConfig("counter", { boot: 2 }), QUIET);
    await expect(vm.pause()).rejects.toThrow(new LifecycleError("pause", "Created"));
    await vm.boot();
    await expect(vm.boot()).rejects.toThrow("cannot boot: the VM is Running");
    await expect(vm.resume()).rejects.toThrow("cannot resume: the VM is Running");
    await vm.pause();
    await expect(vm.pause()).rejects.toThrow("cannot pause: the VM is Paused");
    await vm.resume();
    const exit = await vm.shutdown();
    expect(exit.reason).toBe("shutdown");
    await expect(vm.resume()).rejects.toThrow("cannot resume: the VM is Shutdown");
    expect((await vm.shutdown()).reason).toBe("shutdown"); // idempotent
  });

  test("accesses no device owns are counted per vCPU and read as all ones", async () => {
    await using vm = await Vm.create(rawGuestConfig("counter", { defines: { PIO: 1 } }), QUIET);
    await vm.boot();
    await waitUntil(() => vm.counters().vcpus[0]!.unowned_pio > 1000, "1000 unowned port writes");
    await vm.pause(); // counters stand still while parked, so they can be compared exactly
    const c = vm.counters().vcpus[0]!;
    expect(c.io_exits).toBe(c.unowned_pio); // this guest's only port access is the unowned one
    expect(c.exits).toBeGreaterThanOrEqual(c.io_exits);
  });

  test("await using tears the VM down even when the test body throws", async () => {
    let leaked: Vm | undefined;
    const body = async () => {
      await using vm = await Vm.create(rawGuestConfig("counter", { boot: 2 }), QUIET);
      leaked = vm;
      await vm.boot();
      throw new Error("test failure inside the block");
    };
    await expect(body()).rejects.toThrow("test failure inside the block");
    expect(leaked?.state).toBe("Shutdown");
    expect((await leaked!.exited).reason).toBe("shutdown");
    expect(leaked!.vcpuStates()).toEqual(["EXITED", "EXITED"]);
  });
});

describe("the lifecycle transition table", () => {
  const states = ["Created", "Running", "Paused", "Snapshotting", "Restoring", "Shutdown"] as const;

  test("allows each operation only in the states cloud-hypervisor allows it", () => {
    const table = Object.fromEntries(
      (["boot", "pause", "resume", "resize", "reboot", "press the power button", "shutdown"] as const).map(
        (op) => [op, states.filter((s) => allowed(op, s))],
      ),
    );
    expect(table).toEqual({
      boot: ["Created"],
      pause: ["Running"],
      resume: ["Paused"],
      resize: ["Running", "Paused"],
      reboot: ["Running", "Paused"],
      "press the power button": ["Running"],
      shutdown: [...states],
    });
  });
});
