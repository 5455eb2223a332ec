/**
 * A hostile guest for virtio-net and vsock at once (test/guests/virtio/hostile-net-vsock.c): for
 * BUNVMM_FUZZ_SECONDS it posts random TX chains (random addresses, lengths, flags, loops, indirect
 * tables, avail index jumps), vsock packets with random headers (unknown ops, bogus lengths, foreign
 * CIDs and ports) and random register writes, resetting and re-initialising each device every so
 * often, while the test pauses and resumes the VM, asks for info and counters over the REST API of a
 * `bunvmm run` child (in a network namespace, on a TAP made there), and opens host vsock connections
 * that say something other than `CONNECT <port>`. The VMM must stay healthy: every request answers
 * under its deadline, the VM is Running at the end with the guest still making progress, and both
 * devices' counters of refused input moved (the guest did reach the checks).
 *
 * Skipped, with the reason, only while the config schema rejects `[[net]]` or `[vsock]`. Every
 * namespace is deleted, also on failure, and the test checks none is left.
 * BUNVMM_FUZZ_SECONDS: default 10 (`npm run test:stress` runs 60); BUNVMM_STRESS_SEED seeds both sides.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cGuestElf } from "../helpers/c-guest.ts";
import { leftoverNamespaces, withNetns } from "../helpers/netns.ts";
import { Rng, randomGap } from "../helpers/rng.ts";
import { keyUnsupported, makeTap, startChildVm, sumCounters } from "./virtio-net-support.ts";

const FUZZ_SECONDS = Number(process.env.BUNVMM_FUZZ_SECONDS ?? 10);
const SEED = Number(process.env.BUNVMM_STRESS_SEED ?? 0x5eed) + 0x4e76;
const MIB = 1 << 20;
/** Must be the guest's RAM: hostile-net-vsock.c keeps the addresses it lets a device write above 8 MiB. */
const RAM_BYTES = 64 * MIB;
const TAP = "hostap0";
const GUEST_CID = 3;
const BOOT_DEADLINE_MS = 30_000;
/** The guest prints a "fuzz" line every 1024 iterations, under a second apart here. */
const PROGRESS_DEADLINE_MS = 60_000;
const MAX_GAP_MS = 10;
/** Counter names that count refused input (bad chains, malformed frames, bad packets, resets sent...). */
const REFUSED = /bad|malformed|oversized|rst|refused|violation|invalid|error/;

const unsupported = keyUnsupported("net") ?? keyUnsupported("vsock");
if (unsupported) console.warn(`hostile virtio-net/vsock guest skipped: ${unsupported}`);

afterAll(() => {
  expect(leftoverNamespaces()).toEqual([]);
});

/** A host client of the hybrid vsock socket that sends `line` and closes; errors are its own business. */
function badClient(path: string, line: Uint8Array): void {
  const s = connect(path);
  s.on("error", () => undefined); // the VMM may close it at once: that is its right
  s.on("connect", () => s.end(line));
}

const fuzzLines = (lines: string[]) => lines.filter((l) => /^fuzz \d+$/.test(l)).length;

describe("hostile virtio-net and vsock guest", () => {
  test.skipIf(unsupported !== null)(
    "random TX chains, vsock headers and register writes under pause/resume leave the VMM healthy",
    async () => {
      const elf = cGuestElf(["acpi.c", "netbench-net.c", "netbench-vsock.c", "hostile-net-vsock.c"], {
        RAM_BYTES,
        FUZZ_SEED: SEED >>> 0 || 1,
      });
      const dir = mkdtempSync(join(tmpdir(), "bunvmm-net-hostile-"));
      const vsockPath = join(dir, "v.sock");
      await withNetns(async (ns) => {
        makeTap(ns, TAP, "10.79.0.1/24");
        const vm = await startChildVm(
          [
            "[memory]",
            `size = "${RAM_BYTES / MIB}M"`,
            "[payload]",
            `kernel = ${JSON.stringify(elf)}`,
            'format = "elf"',
            "[serial]",
            'mode = "tty"',
            "[[net]]",
            `tap = "${TAP}"`,
            'id = "net0"',
            "[vsock]",
            `cid = ${GUEST_CID}`,
            `socket = ${JSON.stringify(vsockPath)}`,
            'id = "vsock0"',
            "",
          ].join("\n"),
          ns,
          dir,
        );
        try {
          await vm.waitLine(/^fuzzing$/, "the guest fuzzing", BOOT_DEADLINE_MS);
          const rng = new Rng(SEED);
          const until = performance.now() + FUZZ_SECONDS * 1000;
          const ops = { pauses: 0, infos: 0, counters: 0, clients: 0 };
          while (performance.now() < until && (await vm.state()) !== "Shutdown") {
            const roll = rng.int(10);
            if (roll < 5) {
              await vm.pause();
              expect(await vm.state()).toBe("Paused");
              if (rng.int(2)) {
                await vm.counters();
                ops.counters++;
              }
              await randomGap(rng, MAX_GAP_MS);
              await vm.resume();
              ops.pauses++;
            } else if (roll < 7) {
              expect(["Running", "Paused"]).toContain(await vm.state());
              ops.infos++;
            } else if (roll < 9) {
              await vm.counters();
              ops.counters++;
            } else {
              const junk = [
                `CONNECT ${rng.int(100_000)}\n`,
                "CONNECT\n",
                `HELLO ${rng.int(10)}\n`,
                "x".repeat(200),
                `CONNECT ${2 ** 32 + rng.int(10)}\n`,
              ][rng.int(5)]!;
              badClient(vsockPath, new TextEncoder().encode(junk));
              ops.clients++;
            }
            await randomGap(rng, MAX_GAP_MS);
          }
          // Healthy at the end: Running, answering, and the guest still going.
          if ((await vm.state()) === "Paused") await vm.resume();
          expect(await vm.state()).toBe("Running");
          const seen = fuzzLines(vm.lines);
          await vm.waitLine(
            new RegExp(`^fuzz ${(seen + 1) * 1024}$`),
            "the guest still fuzzing",
            PROGRESS_DEADLINE_MS,
          );
          await vm.pause();
          await vm.resume();
          const c = await vm.counters();
          const netRefused = sumCounters(c.net0, REFUSED);
          const vsockRefused = sumCounters(c.vsock0, REFUSED);
          console.info(
            `seed ${SEED}, ${FUZZ_SECONDS} s: ${fuzzLines(vm.lines) * 1024} guest iterations; ${ops.pauses} pause/resume pairs, ` +
              `${ops.infos} info, ${ops.counters} counters, ${ops.clients} bad vsock clients; net0 ${JSON.stringify(c.net0)}; ` +
              `vsock0 ${JSON.stringify(c.vsock0)}`,
          );
          expect(ops.pauses).toBeGreaterThan(0);
          expect(c.net0).toBeDefined();
          expect(c.vsock0).toBeDefined();
          expect(netRefused).toBeGreaterThan(0);
          expect(vsockRefused).toBeGreaterThan(0);
          // the transport's own count of requests it refused, which every virtio device has
          expect(c.net0!.bad_requests).toBeGreaterThan(0);
          expect(c.vsock0!.bad_requests).toBeGreaterThan(0);
          expect(vm.stderr()).not.toMatch(/crash|uncaught|panic/i);
        } finally {
          await vm.stop();
        }
      });
    },
    600_000,
  );
});
