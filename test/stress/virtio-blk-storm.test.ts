/**
 * A pause/resume storm while the guest does disk I/O, on real KVM with a real image file: the C guest
 * (test/guests/virtio/bench-storm.c) writes numbered sectors and reads each back, one request at a
 * time, while the test pauses and resumes the VM at random gaps. While paused (checked every
 * FROZEN_EVERY pauses) neither the guest's used ring index (read through `vm.memory`) nor the image
 * may move. At the end every request must have been done exactly once: each sector of the guest's range
 * holds the last write meant for it (a lost write, or one replayed late, leaves an older number), the
 * rest of the image is untouched, the guest's own read-backs all matched, and, when the VM exposes the
 * disk's counters, they count exactly the guest's requests. A watchdog fails any operation that hangs.
 *
 * Skipped, with the reason, only when the config schema rejects `[[disks]]` (virtio-blk not wired).
 * Sizing: BUNVMM_STORM_WRITES writes (default 3000, each read back), BUNVMM_STRESS_SEED.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LifecycleError, Vm, type VmExit } from "bunvmm";
import { cGuestElf } from "../helpers/c-guest.ts";
import { observationWindow } from "../helpers/guests.ts";
import { Rng, randomGap } from "../helpers/rng.ts";
import {
  deviceCounters,
  disksUnsupported,
  guarded,
  randomImage,
  showCounters,
  sumMatching,
} from "./virtio-support.ts";

const WRITES = Number(process.env.BUNVMM_STORM_WRITES ?? 3000);
const SEED = Number(process.env.BUNVMM_STRESS_SEED ?? 0x5eed) + 0xb1c;
const SECTOR = 512;
/** The guest writes sectors [FIRST, FIRST + SECTORS), in turn; the image is IMAGE_BYTES. */
const FIRST = 2048;
const SECTORS = 256;
const IMAGE_BYTES = 4 << 20;
/** Must match bench-storm.c: word w of write k holds MAGIC ^ k ^ w. */
const MAGIC = 0x53544f52;
const WORDS = SECTOR / 4;
const DISK_ID = "storm0";
/** Every this many pauses, the test checks that nothing moves while paused (an observation costs time). */
const FROZEN_EVERY = 8;
/** Bounds on the storm: pairs, and time (the guest's 2 × WRITES requests take a few seconds here). */
const MAX_PAIRS = 200_000;
const STORM_DEADLINE_MS = 300_000;
/** Boot to the guest's "used 0x…" line, and the last resume to its power-off. */
const BOOT_DEADLINE_MS = 30_000;
const FINISH_DEADLINE_MS = 120_000;

const unsupported = disksUnsupported();
if (unsupported) console.warn(`virtio-blk pause storm skipped: ${unsupported}`);

/** The write number sector FIRST + s must hold at the end: the last k < WRITES with k % SECTORS == s. */
function lastWrite(s: number): number | null {
  if (s >= WRITES) return null;
  return s + SECTORS * Math.floor((WRITES - 1 - s) / SECTORS);
}

describe("the benchmark and stress guests", () => {
  const builds: [string, string[], Record<string, number>][] = [
    ["bench-blk", ["bench-blk.c", "bench-probe.c"], { BENCH_REQUESTS: 16, BENCH_DEPTH: 32 }],
    [
      "bench-storm",
      ["bench-storm.c", "bench-probe.c"],
      { STORM_WRITES: 16, STORM_FIRST: 0, STORM_SECTORS: 4 },
    ],
    ["hostile-blk", ["hostile-blk.c", "bench-probe.c"], { RAM_BYTES: 64 << 20 }],
  ];

  test.each(builds)(
    "%s builds with no x87 or SSE instruction (the nested KVM cannot run them)",
    (_, sources, defines) => {
      const code = Bun.spawnSync(["objdump", "-d", cGuestElf(sources, defines)]).stdout.toString();
      expect(code).toContain("<guest_main>:");
      expect(code).not.toMatch(/%xmm|%st\b|\bfld|\bfst/);
    },
  );

  test("with no disk, the ACPI walk finds no LNRO0005 virtio-blk, the microvm range is empty, and the guest powers off", async () => {
    const [, sources, defines] = builds[0]!;
    await using vm = await Vm.create(
      {
        memory: { size: "64M" },
        payload: { kernel: cGuestElf(sources, defines), format: "elf" },
        serial: { mode: "off" },
      },
      { logLevel: "error" },
    );
    await vm.boot();
    let timer: Timer | undefined;
    const exit = await Promise.race([
      vm.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no power-off: ${vm.serial.text}`)), BOOT_DEADLINE_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    expect(exit.reason).toBe("poweroff");
    // "no RSDP" or "no XSDT" here would mean the walk itself failed before reaching the DSDT.
    expect(vm.serial.text).toBe(
      "virtio-blk benchmark guest\n" +
        "probe: no virtio-blk among the LNRO0005 devices in the ACPI tables\n" +
        "probe: no virtio-blk transport\nDONE 1\n",
    );
  });
});

describe("virtio-blk pause storm", () => {
  test.skipIf(unsupported !== null)(
    "pausing and resuming while the guest writes and reads back: nothing moves while paused, nothing is lost or done twice",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "bunvmm-blk-storm-"));
      try {
        const image = join(dir, "disk.img");
        const original = randomImage(image, IMAGE_BYTES);
        const elf = cGuestElf(["bench-storm.c", "bench-probe.c"], {
          STORM_WRITES: WRITES,
          STORM_FIRST: FIRST,
          STORM_SECTORS: SECTORS,
        });
        await using vm = await Vm.create(
          {
            memory: { size: "64M" },
            payload: { kernel: elf, format: "elf" },
            serial: { mode: "off" },
            disks: [{ path: image, id: DISK_ID }],
          },
          { logLevel: "error" },
        );
        let exit: VmExit | undefined;
        const exited = vm.exited.then((e) => {
          exit = e;
          return e;
        });
        await vm.boot();
        const m = await vm.serial.waitFor(/used 0x([0-9a-f]{8})\n/, BOOT_DEADLINE_MS);
        const usedIdxAddress = Number.parseInt(m[1]!, 16) + 2; // struct virtq_used: flags, then idx
        const usedIdx = () => {
          const b = vm.memory.read(usedIdxAddress, 2);
          return b[0]! | (b[1]! << 8);
        };
        const guestRange = () => readFileSync(image).subarray(FIRST * SECTOR, (FIRST + SECTORS) * SECTOR);

        // A function, not an expression, so that TypeScript does not narrow vm.state across the awaits.
        const stopped = () => vm.state === "Shutdown";
        const rng = new Rng(SEED);
        const started = performance.now();
        let pairs = 0;
        let frozenChecks = 0;
        let movedBetweenChecks = 0;
        let lastIdx = -1;
        while (!exit && pairs < MAX_PAIRS) {
          if (performance.now() - started > STORM_DEADLINE_MS)
            throw new Error(
              `the storm ran ${STORM_DEADLINE_MS} ms without the guest finishing: ${vm.serial.text.slice(-200)}`,
            );
          try {
            await guarded(vm, `pause #${pairs}`, () => vm.pause());
          } catch (e) {
            if (e instanceof LifecycleError && stopped()) break; // the guest powered off first
            throw e;
          }
          // The guest's power-off can land while the pause is in flight: the VM then stops while paused.
          if (exit || stopped()) break;
          if (pairs % FROZEN_EVERY === 0) {
            const idx = usedIdx();
            const bytes = Buffer.from(guestRange());
            await observationWindow(1 + rng.int(4));
            expect(usedIdx()).toBe(idx);
            expect(Buffer.from(guestRange()).equals(bytes)).toBe(true);
            if (lastIdx >= 0 && idx !== lastIdx) movedBetweenChecks++;
            lastIdx = idx;
            frozenChecks++;
          }
          await randomGap(rng, 1);
          try {
            await guarded(vm, `resume #${pairs}`, () => vm.resume());
          } catch (e) {
            if (e instanceof LifecycleError && stopped()) break; // as above
            throw e;
          }
          pairs++;
          await randomGap(rng, 3);
        }
        let finishTimer: Timer | undefined;
        const end = await Promise.race([
          exited,
          new Promise<never>((_, reject) => {
            finishTimer = setTimeout(
              () => reject(new Error(`the guest did not power off: ${vm.serial.text.slice(-200)}`)),
              FINISH_DEADLINE_MS,
            );
          }),
        ]).finally(() => clearTimeout(finishTimer));
        const serial = vm.serial.text;
        expect(`${end.reason}: ${end.detail}`).toStartWith("poweroff:"); // the guest's own power-off, not a crash
        expect(serial).toContain(`storm ${WRITES} 0\n`);
        expect(serial).toContain("DONE 0\n");
        // The storm really happened while the guest was working.
        expect(pairs).toBeGreaterThan(0);
        expect(frozenChecks).toBeGreaterThan(0);

        const final = readFileSync(image);
        const wrong: string[] = [];
        for (let s = 0; s < SECTORS; s++) {
          const k = lastWrite(s);
          const at = (FIRST + s) * SECTOR;
          const words = new DataView(final.buffer, final.byteOffset + at, SECTOR);
          for (let w = 0; w < WORDS && wrong.length < 10; w++) {
            const want =
              k === null
                ? new DataView(original.buffer, at, SECTOR).getUint32(w * 4, true)
                : (MAGIC ^ k ^ w) >>> 0;
            const got = words.getUint32(w * 4, true);
            if (got !== want) {
              wrong.push(
                `sector ${FIRST + s} word ${w}: 0x${got.toString(16)}, expected 0x${want.toString(16)} (write ${k})`,
              );
              break;
            }
          }
        }
        expect(wrong).toEqual([]);
        // Outside the guest's range nothing changed.
        expect(
          Buffer.from(final.subarray(0, FIRST * SECTOR)).equals(
            Buffer.from(original.subarray(0, FIRST * SECTOR)),
          ),
        ).toBe(true);
        const after = (FIRST + SECTORS) * SECTOR;
        expect(Buffer.from(final.subarray(after)).equals(Buffer.from(original.subarray(after)))).toBe(true);

        const counters = deviceCounters(vm, DISK_ID);
        if (counters) {
          // Exactly the guest's requests: WRITES writes and WRITES reads, nothing done twice.
          expect(sumMatching(counters, /write.*op|^writes$/)).toBe(WRITES);
          expect(sumMatching(counters, /read.*op|^reads$/)).toBe(WRITES);
        }
        console.info(
          `seed ${SEED}: ${WRITES} writes + ${WRITES} reads under ${pairs} pause/resume pairs, ${frozenChecks} frozen checks ` +
            `(the guest had moved between ${movedBetweenChecks} of them); counters ${showCounters(counters)}`,
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    600_000,
  );
});
