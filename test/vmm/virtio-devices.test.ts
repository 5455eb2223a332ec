/**
 * virtio-blk, virtio-rng and virtio-console wired into a VM, on real KVM, driven by the C test guest
 * (test/guests/virtio/virtio-guest.c), which finds every transport through the ACPI tables (RSDP, XSDT,
 * FADT, DSDT, the LNRO0005 devices' Memory32Fixed windows):
 *  - read, write, flush, GET_ID, an out-of-range sector, discard and write-zeroes on a sparse image (its
 *    blocks are freed), reset with a request in flight; the image ends up exactly as the guest wrote it;
 *    rng bytes arrive and differ; console output reaches its file; the counters agree, and the back-end
 *    wrote its irqfd once per completion batch;
 *  - a read-only disk refuses writes and stays unchanged;
 *  - bad disks stop Vm.create with one line naming the key: missing, not whole sectors, locked by a VM;
 *  - a pause/resume storm while the guest does I/O: while paused the used ring, the counters and the
 *    image stay still, every request published is counted once, and the guest carries on after it;
 *  - host I/O stuck past the deadline (an rng source that is a FIFO nobody writes) makes pause roll back
 *    with an error naming the device, and the VM runs on once the I/O completes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Vm } from "../../src/index.ts";
import { WorkerTimeoutError } from "../../src/vmm/worker-pool.ts";
import { cGuestElf } from "../helpers/c-guest.ts";
import { waitUntil } from "../helpers/guests.ts";

const SECTOR = 512;
const SECTOR0_TEXT = "bunvmm sector zero";
const PATTERN = "written by the virtio test guest";
const SERIAL = "vint-disk-0001";
/** What the guest does (test/guests/virtio/virtio-guest.c): sector numbers and lengths. */
const RESET_SECTOR = 2;
const DISCARD_FIRST = 16;
const ZEROES_FIRST = 32;
const RANGE_SECTORS = 16;
const RNG_BYTES = 32;
const CONSOLE_LINE = "hello from the virtio console\n";
const IMAGE_BYTES = 1 << 20;
/** A file system block: what a punched hole frees at a time. */
const FS_BLOCK = 4096;
const STORM_CYCLES = 200;
const USED_IDX_OFFSET = 2;
const TIMEOUT_MS = 5000;
/** The deadline of the stuck-I/O test's pause. */
const SHORT_TIMEOUT_MS = 300;
/** Pause attempts before the rng worker is inside its blocked read. */
const STUCK_ATTEMPTS = 100;

let dir: string;
let guest: string;
let loopGuest: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunvmm-virtio-vm-"));
  guest = cGuestElf(["acpi.c", "virtio-guest.c"]);
  loopGuest = cGuestElf(["acpi.c", "virtio-guest.c"], { LOOP_IO: 1 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sparse image of IMAGE_BYTES with SECTOR0_TEXT at the start. */
function sparseImage(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, new TextEncoder().encode(SECTOR0_TEXT));
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, new Uint8Array(1), 0, 1, IMAGE_BYTES - 1); // extends it; the middle stays a hole
  } finally {
    closeSync(fd);
  }
  return path;
}

function config(extra: object, kernel = guest): object {
  return { memory: { size: "32M" }, payload: { kernel, format: "elf" }, serial: { mode: "off" }, ...extra };
}

async function create(extra: object, options: { kernel?: string; timeoutMs?: number } = {}): Promise<Vm> {
  return Vm.create(config(extra, options.kernel), {
    serial: { kind: "none" },
    logLevel: "warn",
    timeoutMs: options.timeoutMs ?? TIMEOUT_MS,
  });
}

const sector = (bytes: Uint8Array, n: number) => bytes.subarray(n * SECTOR, (n + 1) * SECTOR);

describe("virtio devices in a VM, driven by a guest that finds them through ACPI", () => {
  test("disk, rng and console: every step, the image as written, the counters, the console file", async () => {
    const image = sparseImage("full.img");
    const consoleFile = join(dir, "console.txt");
    await using vm = await create({
      disks: [{ path: image, serial: SERIAL }],
      rng: {},
      console: { mode: "file", file: consoleFile },
    });
    await vm.boot();
    const exit = await vm.exited;
    const text = vm.serial.text;
    expect(exit.reason).toBe("poweroff");
    for (const step of ["probe", "blk", "read0", "write1", "flush", "getid", "readback", "oob"])
      expect(text).toContain(`${step} ok\n`);
    for (const step of ["discard", "wzeroes", "reset", "rng", "console"])
      expect(text).toContain(`${step} ok\n`);
    expect(text).toContain(`sector0: ${SECTOR0_TEXT}\n`);
    expect(text).toContain(`serial: ${SERIAL}\n`);
    expect(text).toEndWith("DONE 0\n");

    // The image: sector 0 untouched, sector 1 the pattern, the discarded and zeroed ranges zero, and
    // the request in flight at the reset either done whole or not at all.
    const bytes = new Uint8Array(readFileSync(image));
    const expected = new Uint8Array(IMAGE_BYTES);
    expected.set(new TextEncoder().encode(SECTOR0_TEXT));
    expected.set(new TextEncoder().encode(PATTERN), SECTOR);
    expected[2 * SECTOR - 1] = 0x5a;
    const resetSector = new Uint8Array(SECTOR);
    resetSector.set(new TextEncoder().encode(PATTERN));
    const resetDone = sector(bytes, RESET_SECTOR).every((b, i) => b === resetSector[i]);
    if (resetDone) expected.set(resetSector, RESET_SECTOR * SECTOR);
    const ranges = bytes.subarray(DISCARD_FIRST * SECTOR, (ZEROES_FIRST + RANGE_SECTORS) * SECTOR);
    expect(ranges.every((b) => b === 0)).toBe(true);
    expect(bytes).toEqual(expected);
    // The punched ranges hold no blocks: only the first block (sectors 0 and 1) and the last byte's.
    expect(statSync(image).blocks * SECTOR).toBeLessThanOrEqual(2 * FS_BLOCK);

    const devices = vm.counters().devices;
    const disk = devices.disk0!;
    expect(disk.kind).toBe("virtio-blk");
    // read0, readback, the two range read-backs, the read after the reset.
    expect(disk.read_ops).toBe(5);
    expect(disk.read_bytes).toBe(3 * SECTOR + 2 * RANGE_SECTORS * SECTOR);
    expect(disk.write_ops).toBe(resetDone ? 4 : 3);
    expect(disk.flush_ops).toBe(1);
    expect(disk.discard_ops).toBe(2);
    // The out-of-range read; and the write in flight at the reset when the device read its descriptors
    // while the guest was zeroing them for the new set-up (it is refused, and published to nobody).
    expect(disk.bad_requests).toBeOneOf([1, 2]);
    expect(disk.needs_reset).toBe(0);
    // The polling guest suppresses nothing and has one request out at a time: one irqfd write per
    // published completion. GET_ID is in no op counter, the failed read is in bad_requests. Around the
    // reset two things may save one interrupt each: the write in flight, done and published before
    // the reset or dropped by it (the reset epoch), and the read after it sharing that batch.
    const completions =
      Number(disk.read_ops) +
      Number(disk.write_ops) +
      Number(disk.flush_ops) +
      Number(disk.discard_ops) +
      Number(disk.bad_requests) +
      1; // GET_ID
    expect(disk.interrupts).toBeLessThanOrEqual(completions);
    expect(disk.interrupts).toBeGreaterThanOrEqual(completions - 2);
    expect(devices.rng0).toMatchObject({ kind: "virtio-rng", bytes: 2 * RNG_BYTES, interrupts: 2 });
    expect(devices.console0).toMatchObject({
      kind: "virtio-console",
      bytes_out: CONSOLE_LINE.length,
      bytes_dropped: 0,
      interrupts: 1,
    });
    expect(readFileSync(consoleFile, "utf8")).toBe(CONSOLE_LINE);
    expect(vm.info().config.disks).toEqual([
      { path: image, readonly: false, direct: false, serial: SERIAL, id: "disk0" },
    ]);
  });

  test("a read-only disk refuses the guest's write and stays unchanged", async () => {
    const image = sparseImage("ro.img");
    const before = readFileSync(image);
    await using vm = await create({ disks: [{ path: image, readonly: true }] });
    await vm.boot();
    await vm.exited;
    expect(vm.serial.text).toContain("rowrite ok\n");
    expect(vm.serial.text).toEndWith("DONE 0\n");
    expect(readFileSync(image).equals(before)).toBe(true);
    const disk = vm.counters().devices.disk0!;
    expect(disk.write_ops).toBe(0);
    expect(disk.bad_requests).toBe(2); // the refused write and the out-of-range read
  });

  test("O_DIRECT disks work the same (direct = true)", async () => {
    const image = sparseImage("direct.img");
    await using vm = await create({ disks: [{ path: image, direct: true }] });
    await vm.boot();
    await vm.exited;
    expect(vm.serial.text).toEndWith("DONE 0\n");
    expect(sector(new Uint8Array(readFileSync(image)), 1).subarray(0, PATTERN.length)).toEqual(
      new TextEncoder().encode(PATTERN),
    );
  });
});

describe("bad disks stop Vm.create with one line naming the key", () => {
  test("a missing image", async () => {
    const path = join(dir, "missing.img");
    const error = await create({ disks: [{ path }] }).catch((e: Error) => e);
    expect((error as Error).message).toBe(`disks.0.path = "${path}": file not found: ${path}`);
  });

  test("an image that is not whole sectors", async () => {
    const path = join(dir, "odd.img");
    writeFileSync(path, new Uint8Array(SECTOR + 1));
    const error = await create({ disks: [{ path }] }).catch((e: Error) => e);
    expect((error as Error).message).toBe(
      `disks.0.path = "${path}": disk image ${path} is ${SECTOR + 1} bytes, not a whole number of ${SECTOR}-byte sectors`,
    );
  });

  test("an image another VM holds", async () => {
    const path = sparseImage("locked.img");
    await using first = await create({ disks: [{ path }] });
    expect(first.state).toBe("Created");
    const error = await create({ disks: [{ path }] }).catch((e: Error) => e);
    expect((error as Error).message).toBe(
      `disks.0.path = "${path}": disk image ${path} is locked by another process (a write lock): is another VM using it?`,
    );
  });
});

describe("pause while the guest does I/O", () => {
  test(`${STORM_CYCLES} pause/resume cycles: nothing moves while paused, nothing is lost or done twice`, async () => {
    const image = sparseImage("storm.img");
    await using vm = await create({ disks: [{ path: image }] }, { kernel: loopGuest });
    await vm.boot();
    await waitUntil(() => /progress \d+\n/.test(vm.serial.text), "the guest's first progress line");
    const counterAt = Number.parseInt(/counter 0x([0-9a-f]+)/.exec(vm.serial.text)![1]!, 16);
    const usedAt = Number.parseInt(/used 0x([0-9a-f]+)/.exec(vm.serial.text)![1]!, 16);
    const guestWord = (gpa: number, bytes: 2 | 4) => {
      const b = vm.memory.read(gpa, bytes);
      return bytes === 2 ? b[0]! | (b[1]! << 8) : new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
    };
    let lastIterations = 0;
    for (let cycle = 0; cycle < STORM_CYCLES; cycle++) {
      await vm.pause();
      const usedIdx = guestWord(usedAt + USED_IDX_OFFSET, 2);
      const iterations = guestWord(counterAt, 4);
      const disk = vm.counters().devices.disk0!;
      const reads = Number(disk.read_ops);
      const writes = Number(disk.write_ops);
      // Every request the device finished is published once and counted once: the device worker parks
      // only between requests.
      expect(usedIdx).toBe((reads + writes) & 0xffff);
      // One write then one read per iteration; at most the current iteration's are ahead of the count.
      expect(writes - iterations).toBeOneOf([0, 1]);
      expect(writes - reads).toBeOneOf([0, 1]);
      expect(iterations).toBeGreaterThanOrEqual(lastIterations);
      lastIterations = iterations;
      if (cycle % 20 === 0) {
        const imageBefore = readFileSync(image);
        // Still paused after reading the image: nothing moved.
        expect(guestWord(usedAt + USED_IDX_OFFSET, 2)).toBe(usedIdx);
        expect(vm.counters().devices.disk0!.write_ops).toBe(writes);
        expect(readFileSync(image).equals(imageBefore)).toBe(true);
      }
      await vm.resume();
    }
    // The guest goes on: no notification was lost around a pause (it would wait for a used element
    // that never comes and print a timeout).
    const after = lastIterations;
    await waitUntil(() => guestWord(counterAt, 4) > after + 1, "the guest's I/O to continue after the storm");
    expect(vm.serial.text).not.toContain("FAIL");
    expect(vm.serial.text).not.toContain("timeout");
  });

  test("a reboot reopens the disk (its lock passes from the old machine to the new) and the guest's I/O goes on", async () => {
    const image = sparseImage("reboot.img");
    await using vm = await create({ disks: [{ path: image }] }, { kernel: loopGuest });
    await vm.boot();
    await waitUntil(() => /progress \d+\n/.test(vm.serial.text), "the guest's first progress line");
    await vm.reboot();
    expect(vm.reboots).toBe(1);
    const counters = () => vm.counters().devices.disk0!;
    // The guest booted again, found its disk through ACPI and writes to it: the new machine opened and
    // locked the image the old one released.
    await waitUntil(
      () => vm.serial.text.split("counter 0x").length === 3 && Number(counters().write_ops) > 0,
      "the rebooted guest's I/O",
    );
    expect(vm.serial.text).not.toContain("FAIL");
  });

  test("host I/O stuck past the deadline makes pause roll back naming the device; the VM runs on", async () => {
    const image = sparseImage("stuck.img");
    const fifo = join(dir, "entropy.fifo");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    // Held open for writing, so the VMM's open for reading does not block; nothing is written yet, so
    // the rng back-end's read blocks inside the guest's first request.
    const writer = openSync(fifo, "r+");
    try {
      await using vm = await create(
        { disks: [{ path: image }], rng: { src: fifo } },
        { timeoutMs: SHORT_TIMEOUT_MS },
      );
      await vm.boot();
      await waitUntil(() => vm.serial.text.includes("rng posted\n"), "the guest's rng request");
      let error: unknown;
      // The notification may still be on its way to the worker: a pause that lands before its read
      // succeeds, so resume and try again.
      for (let attempt = 0; attempt < STUCK_ATTEMPTS && error === undefined; attempt++) {
        error = await vm.pause().then(
          () => vm.resume().then(() => undefined),
          (e: unknown) => e,
        );
      }
      expect(error).toBeInstanceOf(WorkerTimeoutError);
      expect((error as Error).message).toStartWith(
        `pause timed out after ${SHORT_TIMEOUT_MS} ms waiting for device rng0 RUNNING`,
      );
      expect((error as Error).message).toEndWith("rolled back: every device worker is running");
      expect(vm.state).toBe("Running");
      expect(vm.vcpuStates()).toEqual(["RUNNING"]);
      // The host I/O completes: the request is served and the guest finishes.
      const entropy = new Uint8Array(2 * RNG_BYTES).map((_, i) => i + 1);
      writeSync(writer, entropy);
      const exit = await vm.exited;
      expect(exit.reason).toBe("poweroff");
      expect(vm.serial.text).toContain("rng ok\n");
      expect(vm.serial.text).toEndWith("DONE 0\n");
    } finally {
      closeSync(writer);
    }
  });
});
