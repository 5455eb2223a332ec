/**
 * Snapshot and restore of VMs with virtio devices, on real KVM, driven by the C test guest
 * (test/guests/virtio/virtio-guest.c):
 *  - built with LOOP_IO it writes numbered sectors and reads them back forever; snapshotted in the
 *    middle of that traffic (the first time with a request posted that the device had not popped) and
 *    restored into a new VM, three generations in a row, its iteration
 *    counter continues from the saved value, every write is done exactly once (the used ring, the
 *    device's counters and the guest's counter agree; the image's sectors hold the last writes' numbers),
 *    and no request is lost (the guest would print "timeout" waiting for it);
 *  - a snapshot is refused while a device worker runs (only reachable by reaching into the VM);
 *  - one snapshot restored twice: refused with the lock error while the first VM holds its image, then
 *    restored once that VM is gone; refused once a restored VM has written to the image, and restored
 *    again once a copy kept with its mtime (cp -p) is put back;
 *  - built with LOOP_DEVICES it asks the rng for bytes and prints a numbered tick on the console forever:
 *    restored, the rng and console counts continue from the saved ones, and the console file holds
 *    every tick once, in order, the snapshotted VM's then the restored VM's.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Vm } from "../../src/index.ts";
import { SnapshotError } from "../../src/snapshot/snapshot-error.ts";
import type { Machine } from "../../src/vmm/builder.ts";
import { cGuestElf } from "../helpers/c-guest.ts";
import { waitUntil } from "../helpers/guests.ts";

const SECTOR = 512;
const IMAGE_BYTES = 1 << 20;
/** What the LOOP_IO guest does (test/guests/virtio/virtio-guest.c). */
const LOOP_FIRST = 64;
const LOOP_SECTORS = 32;
const PROGRESS_EVERY = 64;
/** The `idx` field's offset in the available and used rings. */
const IDX_OFFSET = 2;
/** "tick " + 8 hex digits + newline: one console line of the LOOP_DEVICES guest. */
const TICK_BYTES = 14;
const RNG_BYTES = 32;
/** Snapshot, restore, run: this many times in a row from one guest. */
const GENERATIONS = 3;
/** Iterations each generation runs past the one before it, at least. */
const RUN_ITERATIONS = 40;
const TIMEOUT_MS = 5000;
type Devices = ReturnType<Vm["counters"]>["devices"];
const OPTIONS = { serial: { kind: "none" }, logLevel: "warn", timeoutMs: TIMEOUT_MS } as const;

let dir: string;
let loopGuest: string;
let devicesGuest: string;
let n = 0;
const fresh = (name: string) => join(dir, `${name}-${n++}`);
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunvmm-snapshot-virtio-"));
  devicesGuest = cGuestElf(["acpi.c", "virtio-guest.c"], { LOOP_DEVICES: 1 });
  loopGuest = cGuestElf(["acpi.c", "virtio-guest.c"], { LOOP_IO: 1 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sparse image of IMAGE_BYTES. */
function sparseImage(): string {
  const path = fresh("disk.img");
  writeFileSync(path, new Uint8Array(0));
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, new Uint8Array(1), 0, 1, IMAGE_BYTES - 1);
  } finally {
    closeSync(fd);
  }
  return path;
}

function config(extra: object, kernel: string): object {
  return { memory: { size: "32M" }, payload: { kernel, format: "elf" }, serial: { mode: "off" }, ...extra };
}

/** Where the LOOP_IO guest keeps its iteration count and used ring (it prints them first). */
interface LoopGuest {
  counterAt: number;
  usedAt: number;
  availAt: number;
}

async function loopGuestAddresses(vm: Vm): Promise<LoopGuest> {
  await waitUntil(() => /avail 0x[0-9a-f]+\n/.test(vm.serial.text), "the guest's addresses");
  const address = (what: string) =>
    Number.parseInt(new RegExp(`${what} 0x([0-9a-f]+)`).exec(vm.serial.text)![1]!, 16);
  return { counterAt: address("counter"), usedAt: address("used"), availAt: address("avail") };
}

const u32 = (vm: Vm, gpa: number) => vm.memory.readU32(gpa);
const u16 = (vm: Vm, gpa: number) => {
  const b = vm.memory.read(gpa, 2);
  return b[0]! | (b[1]! << 8);
};

/** Requests the guest posted that the device has not completed (avail.idx - used.idx). */
const unanswered = (vm: Vm, at: LoopGuest) =>
  (u16(vm, at.availAt + IDX_OFFSET) - u16(vm, at.usedAt + IDX_OFFSET)) & 0xffff;

/**
 * The VM's device workers, which only a whole-VM pause parks through the API. The first test parks them
 * alone, the vCPUs running on, so the snapshot holds a request posted and notified but not popped.
 */
const deviceWorkers = (vm: Vm) => (vm as unknown as { machine: Machine }).machine.devices.workers;

/** What a paused LOOP_IO guest and its disk say; checks they agree (each request done once). */
function pausedLoopState(vm: Vm, at: LoopGuest) {
  const iterations = u32(vm, at.counterAt);
  const usedIdx = u16(vm, at.usedAt + IDX_OFFSET);
  const disk = vm.counters().devices.disk0!;
  const writes = Number(disk.write_ops);
  const reads = Number(disk.read_ops);
  // Every request the device finished is published once and counted once.
  expect(usedIdx).toBe((reads + writes) & 0xffff);
  // One write then one read per iteration; at most the current iteration's are ahead of the count.
  expect(writes - iterations).toBeOneOf([0, 1]);
  expect(writes - reads).toBeOneOf([0, 1]);
  expect(disk.bad_requests).toBe(0);
  return { iterations, usedIdx, writes, reads };
}

/** The image's loop sectors hold the numbers of the last LOOP_SECTORS writes, each where it belongs. */
function expectImageAfter(image: string, writes: number): void {
  const bytes = new Uint8Array(readFileSync(image));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = Math.max(0, writes - LOOP_SECTORS); i < writes; i++) {
    const at = (LOOP_FIRST + (i % LOOP_SECTORS)) * SECTOR;
    expect({ sector: LOOP_FIRST + (i % LOOP_SECTORS), holds: view.getUint32(at, true) }).toEqual({
      sector: LOOP_FIRST + (i % LOOP_SECTORS),
      holds: i,
    });
  }
}

/** Restoring `snap` fails with a SnapshotError of one line matching `expected`. */
async function refusedRestore(snap: string, expected: RegExp): Promise<void> {
  const e = await Vm.restore(snap, OPTIONS).then(
    async (vm) => {
      await vm.shutdown();
      return undefined;
    },
    (err: unknown) => err as Error,
  );
  expect(e).toBeInstanceOf(SnapshotError);
  expect(e!.message).toMatch(expected);
  expect(e!.message).not.toContain("\n");
}

describe("snapshot and restore with virtio devices", () => {
  test("snapshot during virtio-blk traffic: every request completes exactly once after restore", async () => {
    const image = sparseImage();
    let snap = fresh("snap");
    let at: LoopGuest;
    let saved: ReturnType<typeof pausedLoopState>;
    {
      await using vm = await Vm.create(config({ disks: [{ path: image }] }, loopGuest), OPTIONS);
      await vm.boot();
      at = await loopGuestAddresses(vm);
      await waitUntil(() => u32(vm, at.counterAt) > RUN_ITERATIONS, "the guest's I/O loop running");
      // The device parks between requests; the guest posts its next one, notifies, and waits for it.
      await deviceWorkers(vm).pause(TIMEOUT_MS);
      await waitUntil(() => unanswered(vm, at) === 1, "the guest's request waiting for the parked device");
      await vm.pause();
      expect(unanswered(vm, at)).toBe(1);
      saved = pausedLoopState(vm, at);
      await vm.snapshot(snap);
      expect(pausedLoopState(vm, at)).toEqual(saved); // snapshotting moved nothing
    }
    expectImageAfter(image, saved.writes);

    for (let generation = 1; generation <= GENERATIONS; generation++) {
      await using vm = await Vm.restore(snap, OPTIONS);
      expect(vm.state).toBe("Paused");
      // The guest's memory, the ring and the device's counters are as they were saved.
      expect(pausedLoopState(vm, at)).toEqual(saved);
      // The request posted before the first snapshot is still there, unpopped; its notification went
      // with the old VM's eventfds. Served after resume (the device re-checks every queue), or the guest
      // would time out waiting for it.
      if (generation === 1) expect(unanswered(vm, at)).toBe(1);
      await vm.resume();
      const from = saved.iterations;
      await waitUntil(
        () => u32(vm, at.counterAt) > from + RUN_ITERATIONS,
        `generation ${generation}: the restored guest's I/O going on`,
      );
      await vm.pause();
      const now = pausedLoopState(vm, at);
      expect(now.iterations).toBeGreaterThan(from);
      expect(now.writes).toBeGreaterThan(saved.writes);
      expectImageAfter(image, now.writes);
      // The restored guest's console starts empty and continues the count: its first progress line is
      // the first multiple of PROGRESS_EVERY at or past the saved count.
      const progress = /progress (\d+)\n/.exec(vm.serial.text);
      if (progress) {
        const first = Number(progress[1]);
        expect(first % PROGRESS_EVERY).toBe(0);
        expect(first).toBeGreaterThanOrEqual(from);
        expect(first).toBeLessThanOrEqual(from + PROGRESS_EVERY);
      }
      expect(vm.serial.text).not.toContain("counter 0x"); // no reboot: it continued
      expect(vm.serial.text).not.toContain("FAIL");
      expect(vm.serial.text).not.toContain("timeout");
      saved = now;
      snap = fresh("snap");
      await vm.snapshot(snap);
    }
  });

  test("a device worker that is not parked is refused: nothing written, the VM stays paused", async () => {
    const image = sparseImage();
    const snap = fresh("snap");
    await using vm = await Vm.create(config({ disks: [{ path: image }] }, loopGuest), OPTIONS);
    await vm.boot();
    await loopGuestAddresses(vm);
    await vm.pause();
    await deviceWorkers(vm).resume(TIMEOUT_MS); // only the device runs: its state could change under the save
    const error = await vm.snapshot(snap).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(SnapshotError);
    expect((error as Error).message).toBe(
      `snapshot ${snap}: device disk0 is RUNNING; only a VM whose device workers are all parked can be snapshotted`,
    );
    expect(existsSync(snap)).toBe(false);
    expect(vm.state).toBe("Paused");
  });

  test("one snapshot restored twice: refused while the first VM holds the image, then restored; refused once the image changed, restored with the kept copy", async () => {
    const image = sparseImage();
    const snap = fresh("snap");
    let at: LoopGuest;
    {
      await using vm = await Vm.create(config({ disks: [{ path: image }] }, loopGuest), OPTIONS);
      await vm.boot();
      at = await loopGuestAddresses(vm);
      await waitUntil(() => u32(vm, at.counterAt) > 0, "the guest's I/O loop running");
      await vm.pause();
      await vm.snapshot(snap);
    }
    // The image as the snapshot left it, with its modification time, to put back at the end.
    const kept = `${image}.kept`;
    expect(Bun.spawnSync(["cp", "-p", image, kept]).exitCode).toBe(0);
    let saved: number;
    {
      await using first = await Vm.restore(snap, OPTIONS);
      saved = u32(first, at.counterAt);
      // The same snapshot names the same image, which the first VM holds locked: refused, nothing built.
      await refusedRestore(
        snap,
        new RegExp(`^snapshot ${snap}: disks\\.0\\.path = ".*": disk image .* is locked by another process`),
      );
      expect(first.state).toBe("Paused");
    }
    {
      // The first VM is gone (it never ran, so the image is as the snapshot left it): restored.
      await using second = await Vm.restore(snap, { ...OPTIONS, resume: true });
      expect(second.state).toBe("Running");
      await waitUntil(() => u32(second, at.counterAt) > saved + 1, "the second restore's guest going on");
      await second.pause();
      pausedLoopState(second, at);
    }
    // The second VM wrote to the image: the snapshot no longer describes it.
    await refusedRestore(
      snap,
      new RegExp(`^snapshot ${snap}: disk image ${image} changed since the snapshot \\(.*\\)`),
    );
    // The kept copy put back (cp -p keeps its mtime): the snapshot restores again, from its saved count.
    expect(Bun.spawnSync(["cp", "-p", kept, image]).exitCode).toBe(0);
    await using third = await Vm.restore(snap, { ...OPTIONS, resume: true });
    await waitUntil(() => u32(third, at.counterAt) > saved + 1, "the third restore's guest going on");
    await third.pause();
    pausedLoopState(third, at);
  });

  test("rng and console: their counts survive, console output continues its file", async () => {
    const image = sparseImage();
    const consoleFile = fresh("console.txt");
    const snap = fresh("snap");
    const extra = { disks: [{ path: image }], rng: {}, console: { mode: "file", file: consoleFile } };
    let counterAt: number;
    let saved: Devices;
    let iterations: number;
    {
      await using vm = await Vm.create(config(extra, devicesGuest), OPTIONS);
      await vm.boot();
      await waitUntil(() => /counter 0x[0-9a-f]+\n/.test(vm.serial.text), "the guest's counter address");
      counterAt = Number.parseInt(/counter 0x([0-9a-f]+)/.exec(vm.serial.text)![1]!, 16);
      await waitUntil(() => u32(vm, counterAt) > RUN_ITERATIONS, "the guest's rng and console loop");
      await vm.pause();
      iterations = u32(vm, counterAt);
      saved = vm.counters().devices;
      await vm.snapshot(snap);
    }
    expectTicks(consoleFile, iterations, saved);

    await using vm = await Vm.restore(snap, OPTIONS);
    const restored = vm.counters().devices;
    expect(restored.rng0).toEqual(saved.rng0!);
    expect(restored.console0).toEqual(saved.console0!);
    expect(readFileSync(consoleFile, "utf8").length).toBe(Number(saved.console0!.bytes_out)); // not truncated
    await vm.resume();
    await waitUntil(() => u32(vm, counterAt) > iterations + RUN_ITERATIONS, "the restored guest's loop");
    await vm.pause();
    const now = vm.counters().devices;
    expect(Number(now.rng0!.bytes)).toBeGreaterThan(Number(saved.rng0!.bytes));
    // One file: the snapshotted VM's ticks, then the restored VM's, each once, none missing.
    expectTicks(consoleFile, u32(vm, counterAt), now);
    expect(vm.serial.text).not.toContain("FAIL");
    expect(vm.serial.text).not.toContain("timeout");
  });
});

/**
 * The console file holds "tick 0" .. "tick k-1" in order, k the guest's count or one more (the tick of
 * the iteration in progress), and the devices' counters agree with it.
 */
function expectTicks(file: string, iterations: number, devices: Devices): void {
  const text = readFileSync(file, "utf8");
  expect(text.length % TICK_BYTES).toBe(0);
  const ticks = text.length / TICK_BYTES;
  expect(ticks - iterations).toBeOneOf([0, 1]);
  const expected = Array.from({ length: ticks }, (_, i) => `tick ${i.toString(16).padStart(8, "0")}\n`);
  expect(text).toBe(expected.join(""));
  expect(devices.console0).toMatchObject({ bytes_out: text.length, bytes_dropped: 0, bad_requests: 0 });
  // One rng request per iteration, before its tick.
  expect(Number(devices.rng0!.bytes) / RNG_BYTES - ticks).toBeOneOf([0, 1]);
  expect(devices.rng0!.bad_requests).toBe(0);
}
