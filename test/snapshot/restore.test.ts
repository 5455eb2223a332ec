/**
 * Snapshot and restore on real KVM: a counting guest continues from its saved value, the snapshot
 * stays untouched and starts more than one VM, resized VMs (and a removal still pending) come back
 * exactly so, serial input queued before the snapshot is read after it. VMs with virtio devices (a
 * snapshot during virtio-blk traffic) are in test/snapshot/virtio.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CPU_ENABLED, CPU_REMOVING } from "../../devices/cpu-hotplug-controller.ts";
import { Vm } from "../../src/index.ts";
import { rawGuestConfig, waitUntil } from "../helpers/guests.ts";

const QUIET = { logLevel: "silent" } as const;
const COUNTERS = 0x9000;
const counter = (vm: Vm, cpu: number) => vm.memory.readU32(COUNTERS + 4 * cpu);
const work = mkdtempSync(join(tmpdir(), "bunvmm-snapshot-test-"));
let n = 0;
const freshDir = () => join(work, `snap-${n++}`);
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Waits until each of `cpus` counts past the value it had now. */
async function counting(vm: Vm, cpus: number[], what: string): Promise<void> {
  const before = cpus.map((c) => counter(vm, c));
  await waitUntil(() => cpus.every((c, i) => counter(vm, c) > before[i]!), what, 20_000);
}

describe("snapshot and restore", () => {
  test("a counting guest continues from its saved value; the snapshot is sparse and unchanged", async () => {
    const dir = freshDir();
    let saved: number[];
    {
      await using vm = await Vm.create(rawGuestConfig("counter", { boot: 2, memory: "64M" }), QUIET);
      await vm.boot();
      await counting(vm, [0, 1], "both vCPUs counting");
      await vm.pause();
      saved = [counter(vm, 0), counter(vm, 1)];
      const stats = await vm.snapshot(dir);
      expect(vm.state).toBe("Paused");
      expect(stats.vcpus).toBe(2);
      expect(stats.memory.size).toBe(64 << 20);
      expect(stats.memory.written).toBeLessThan(1 << 20); // a few pages of code, tables and counters
      expect([counter(vm, 0), counter(vm, 1)]).toEqual(saved); // snapshotting ran no guest code
    }
    expect(readdirSync(dir).sort()).toEqual(["config.json", "manifest.json", "memory.bin", "state.json"]);
    const memoryFile = join(dir, "memory.bin");
    expect(statSync(memoryFile).size).toBe(64 << 20);
    expect(statSync(memoryFile).blocks * 512).toBeLessThan(2 << 20); // holes
    const before = readFileSync(memoryFile);

    await using vm = await Vm.restore(dir, QUIET);
    expect(vm.state).toBe("Paused");
    expect(vm.vcpuCount).toBe(2);
    expect([counter(vm, 0), counter(vm, 1)]).toEqual(saved);
    await vm.resume();
    await counting(vm, [0, 1], "both vCPUs counting after restore");
    expect(counter(vm, 0)).toBeGreaterThan(saved[0]!);
    expect(counter(vm, 0)).toBeLessThan(saved[0]! + 2_000_000_000);
    await vm.pause();
    expect(readFileSync(memoryFile).equals(before)).toBe(true); // copy-on-write: the file is untouched
  });

  test("two VMs restored from one snapshot run independently", async () => {
    const dir = freshDir();
    {
      await using vm = await Vm.create(rawGuestConfig("counter", { boot: 1 }), QUIET);
      await vm.boot();
      await counting(vm, [0], "counting");
      await vm.pause();
      await vm.snapshot(dir);
    }
    await using a = await Vm.restore(dir, QUIET);
    await using b = await Vm.restore(dir, QUIET);
    const start = counter(a, 0);
    expect(counter(b, 0)).toBe(start);
    await a.resume();
    await counting(a, [0], "VM a counting");
    expect(counter(b, 0)).toBe(start); // b is still paused: a's writes are a's own
    a.memory.writeU32(COUNTERS, 0);
    await a.pause();
    expect(counter(b, 0)).toBe(start);
    await b.resume();
    await counting(b, [0], "VM b counting");
    expect(counter(a, 0)).toBeLessThan(counter(b, 0));
  });

  test("only a paused VM is snapshotted", async () => {
    await using vm = await Vm.create(rawGuestConfig("counter", { boot: 1 }), QUIET);
    await vm.boot();
    await expect(vm.snapshot(freshDir())).rejects.toThrow("cannot snapshot: the VM is Running");
  });
});

describe("restore keeps the vCPUs and the hotplug controller exactly", () => {
  test("a VM resized to 3 of 5 vCPUs", async () => {
    const dir = freshDir();
    let status: number[];
    {
      await using vm = await Vm.create(rawGuestConfig("hotplug", { boot: 1, max: 5 }), QUIET);
      await vm.boot();
      await counting(vm, [0], "the boot vCPU scanning");
      await vm.resize(3);
      await counting(vm, [1, 2], "hot-added vCPUs 1 and 2 counting");
      await waitUntil(() => vm.hotplugStatus()[2] === CPU_ENABLED, "the guest acknowledged the insert");
      await vm.pause();
      status = vm.hotplugStatus();
      await vm.snapshot(dir);
    }
    await using vm = await Vm.restore(dir, QUIET);
    expect(vm.vcpuCount).toBe(3);
    expect(vm.info().config.cpus.boot_vcpus).toBe(3);
    expect(vm.config.cpus.boot_vcpus).toBe(1); // the config the user gave, as given
    expect(vm.hotplugStatus()).toEqual(status);
    expect(vm.vcpuStates()).toEqual(["PARKED", "PARKED", "PARKED"]);
    await vm.resume();
    await counting(vm, [0, 1, 2], "all three vCPUs counting after restore");
    await vm.resize(5); // hotplug still works after a restore
    await counting(vm, [3, 4], "vCPUs 3 and 4 hot-added after restore counting");
  });

  test("a VM whose removal is still pending", async () => {
    const dir = freshDir();
    let status: number[];
    {
      // The counter guest ignores hotplug: vCPUs 3 and 4 stay, marked for removal, still counting.
      await using vm = await Vm.create(rawGuestConfig("counter", { boot: 5, max: 5 }), QUIET);
      await vm.boot();
      await vm.resize(3);
      await counting(vm, [0, 1, 2, 3, 4], "every vCPU counting");
      await vm.pause();
      status = vm.hotplugStatus();
      expect(status[4]).toBe(CPU_ENABLED | CPU_REMOVING);
      await vm.snapshot(dir);
    }
    await using vm = await Vm.restore(dir, { ...QUIET, resume: true });
    expect(vm.state).toBe("Running");
    expect(vm.vcpuCount).toBe(3);
    expect(vm.hotplugStatus()).toEqual(status);
    await counting(vm, [0, 1, 2, 3, 4], "every vCPU counting after restore, the pending ones too");
    await expect(vm.resize(4)).rejects.toThrow(
      "cannot resize while vCPU 3 is being removed; the guest has not ejected it yet",
    );
  });

  test("vCPUs hot-added while paused and snapshotted before they first ran", async () => {
    const dir = freshDir();
    {
      await using vm = await Vm.create(rawGuestConfig("hotplug", { boot: 1, max: 3 }), QUIET);
      await vm.boot();
      await counting(vm, [0], "the boot vCPU scanning");
      await vm.pause();
      await vm.resize(3); // their workers start parked; the save may reach them before their first checkpoint
      await vm.snapshot(dir);
    }
    await using vm = await Vm.restore(dir, { ...QUIET, resume: true });
    await counting(vm, [0, 1, 2], "all three vCPUs counting after restore");
  });
});

test("serial input queued before the snapshot is read after restore", async () => {
  const dir = freshDir();
  {
    await using vm = await Vm.create(rawGuestConfig("echo"), QUIET);
    await vm.boot();
    await vm.serial.waitFor("ready\n", 20_000);
    await vm.pause();
    vm.serial.write("abc"); // queued in the UART's receive queue: the guest is paused and cannot read it
    await vm.snapshot(dir);
  }
  await using vm = await Vm.restore(dir, { ...QUIET, resume: true });
  await vm.serial.waitFor("ABC", 20_000);
  expect(vm.serial.text).toBe("ABC"); // only what the restored guest printed
});
