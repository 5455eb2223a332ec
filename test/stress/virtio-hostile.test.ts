/**
 * A hostile virtio-blk guest on real KVM (test/guests/virtio/hostile-blk.c): for BUNVMM_FUZZ_SECONDS it
 * posts random descriptor chains (random addresses, lengths, flags, loops, indirect tables, avail index
 * jumps), legitimate requests now and then, random values at random widths to the transport's
 * registers, and re-initialises the device every so often, while the test pauses, resumes, resizes and
 * asks for `info()`. The VMM must stay healthy: every operation finishes under the watchdog, the VM is
 * still Running with the guest making progress afterwards, the disk's counters show refused requests and
 * real writes, and the image outside the sectors the guest can reach (the first ALLOWED_BYTES; the
 * guest's file comment proves the bound) is byte for byte unchanged.
 *
 * Skipped, with the reason, only when the config schema rejects `[[disks]]` (virtio-blk not wired).
 * BUNVMM_FUZZ_SECONDS: default 10 (`npm run test:stress` runs 60); BUNVMM_STRESS_SEED seeds both sides.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LifecycleError, ResizeError, Vm, type VmExit } from "bunvmm";
import { cGuestElf } from "../helpers/c-guest.ts";
import { waitUntil } from "../helpers/guests.ts";
import { Rng, randomGap } from "../helpers/rng.ts";
import {
  deviceCounters,
  disksUnsupported,
  fileRangeHash,
  guarded,
  randomImage,
  showCounters,
  sumMatching,
} from "./virtio-support.ts";

const FUZZ_SECONDS = Number(process.env.BUNVMM_FUZZ_SECONDS ?? 10);
const SEED = Number(process.env.BUNVMM_STRESS_SEED ?? 0x5eed) + 0x4057;
const MIB = 1 << 20;
/** Must match hostile-blk.c: RAM (its "outside RAM" addresses start here), the image, the reachable sectors. */
const RAM_BYTES = 64 * MIB;
const IMAGE_BYTES = 32 * MIB;
const ALLOWED_BYTES = 8192 * 512;
const MAX_VCPUS = 3;
const DISK_ID = "hostile0";
const BOOT_DEADLINE_MS = 30_000;
/** The guest prints a "fuzz" line every 4096 iterations, about every few seconds here. */
const PROGRESS_DEADLINE_MS = 60_000;

const unsupported = disksUnsupported();
if (unsupported) console.warn(`hostile virtio-blk guest skipped: ${unsupported}`);

const fuzzLines = (vm: Vm) => vm.serial.text.split("\n").filter((l) => /^fuzz \d+ \d+$/.test(l)).length;

describe("hostile virtio-blk guest", () => {
  test.skipIf(unsupported !== null)(
    "random descriptors and register writes under pause/resume/resize leave the VMM healthy and the image outside the guest's range untouched",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "bunvmm-blk-hostile-"));
      try {
        const image = join(dir, "disk.img");
        randomImage(image, IMAGE_BYTES);
        const untouched = fileRangeHash(image, ALLOWED_BYTES, IMAGE_BYTES);
        const elf = cGuestElf(["hostile-blk.c", "bench-probe.c"], { RAM_BYTES, FUZZ_SEED: SEED >>> 0 || 1 });
        await using vm = await Vm.create(
          {
            cpus: { boot_vcpus: 1, max_vcpus: MAX_VCPUS },
            memory: { size: `${RAM_BYTES / MIB}M` },
            payload: { kernel: elf, format: "elf" },
            serial: { mode: "off" },
            disks: [{ path: image, id: DISK_ID }],
          },
          { logLevel: "fatal" },
        );
        let exit: VmExit | undefined;
        void vm.exited.then((e) => {
          exit = e;
        });
        await vm.boot();
        await vm.serial.waitFor("fuzzing\n", BOOT_DEADLINE_MS);

        const rng = new Rng(SEED);
        const until = performance.now() + FUZZ_SECONDS * 1000;
        const ops = { pauses: 0, resizes: 0, refusedResizes: 0, infos: 0 };
        // A VM that stops under the fuzz (a device worker dying, say) fails the test with its reason.
        const whyStopped = async () => {
          const { reason, detail } = await vm.exited;
          return new Error(`the VM stopped under the fuzz (${reason}): ${detail}`);
        };
        const stoppedUnder = async (e: unknown): Promise<never> => {
          if (!(e instanceof LifecycleError) || vm.state !== "Shutdown") throw e;
          throw await whyStopped();
        };
        while (performance.now() < until && !exit) {
          await guarded(vm, "pause under fuzz", () => vm.pause()).catch(stoppedUnder);
          ops.pauses++;
          if (rng.int(4) === 0) {
            const { state } = vm.info();
            if (state === "Shutdown") throw await whyStopped();
            expect(state).toBe("Paused");
            ops.infos++;
          }
          await randomGap(rng, 2);
          await guarded(vm, "resume under fuzz", () => vm.resume()).catch(stoppedUnder);
          if (rng.int(8) === 0) {
            // The guest never starts extra vCPUs; a removal it must acknowledge stays pending and is refused.
            await guarded(vm, "resize under fuzz", () => vm.resize(1 + rng.int(MAX_VCPUS)))
              .then(() => ops.resizes++)
              .catch((e) => {
                if (!(e instanceof ResizeError)) return stoppedUnder(e);
                ops.refusedResizes++;
              });
          }
          await randomGap(rng, 5);
        }
        expect(exit === undefined ? "running" : `${exit.reason}: ${exit.detail}`).toBe("running"); // nothing stopped the VM
        expect(vm.info().state).toBe("Running");
        expect(vm.vcpuStates()[0]).toBe("RUNNING");
        // Still served: the guest's MMIO accesses and notifications keep being answered, so it keeps counting.
        const seen = fuzzLines(vm);
        await waitUntil(
          () => fuzzLines(vm) > seen,
          "the hostile guest printing its next fuzz line",
          PROGRESS_DEADLINE_MS,
        );
        const counters = deviceCounters(vm, DISK_ID);
        expect(counters).toBeDefined();
        expect(sumMatching(counters!, /bad|refused|invalid|error/i)).toBeGreaterThan(0);
        expect(sumMatching(counters!, /write.*op|^writes$/)).toBeGreaterThan(0); // legitimate writes got through
        console.info(
          `fuzz ${FUZZ_SECONDS} s, seed ${SEED}: ${ops.pauses} pause/resume pairs, ${ops.infos} info, ${ops.resizes} resizes ` +
            `(${ops.refusedResizes} refused); ${fuzzLines(vm)} fuzz lines; counters ${showCounters(counters)}`,
        );
        expect((await guarded(vm, "shutdown", () => vm.shutdown())).reason).toBe("shutdown");
        expect(fileRangeHash(image, ALLOWED_BYTES, IMAGE_BYTES)).toBe(untouched);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    600_000,
  );
});
