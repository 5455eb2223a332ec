/**
 * A pause/resume storm during a vsock transfer both ways (test/guests/virtio/netbench-storm.c): the
 * host connects through bunvmm's hybrid vsock socket (`CONNECT <port>`), then VSOCK_BYTES bytes of a
 * numbered pattern (byte i = i mod 251) go each way at once while the test pauses and resumes the VM
 * over the REST API of a `bunvmm run` child. A stream has no loss the host may excuse: the guest must
 * receive exactly the host's bytes in order, and the host exactly the guest's, nothing more (a lost or
 * repeated byte shifts every later one off the pattern; an extra one shows in the count).
 *
 * Skipped, with the reason, only while the config schema rejects `[vsock]`. BUNVMM_STRESS_SEED seeds
 * the storm.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cGuestElf } from "../helpers/c-guest.ts";
import { waitUntil } from "../helpers/guests.ts";
import { Rng, randomGap } from "../helpers/rng.ts";
import { keyUnsupported, startChildVm, stormStep } from "./virtio-net-support.ts";

const SEED = Number(process.env.BUNVMM_STRESS_SEED ?? 0x5eed) + 0x7653;
const GUEST_CID = 3;
const VSOCK_PORT = 5200;
/** Each way. The guest checks every byte in emulated code (~10 instructions a byte), so not more. */
const VSOCK_BYTES = 512 * 1024;
const PATTERN_PERIOD = 251;
const BOOT_DEADLINE_MS = 30_000;
const TRANSFER_DEADLINE_MS = 240_000;
const MAX_GAP_MS = 20;
const CHUNK = 64 * 1024;

const unsupported = keyUnsupported("vsock");
if (unsupported) console.warn(`vsock pause storm skipped: ${unsupported}`);

describe("vsock pause storm", () => {
  test.skipIf(unsupported !== null)(
    "numbered bytes both ways under pause/resume arrive once each, in order",
    async () => {
      const elf = cGuestElf(["acpi.c", "netbench-net.c", "netbench-vsock.c", "netbench-storm.c"], {
        HOST_IP: 1,
        GUEST_IP: 2,
        NET_PORT: 1,
        G2H_COUNT: 1,
        H2G_COUNT: 1,
        VSOCK_PORT,
        VSOCK_BYTES,
      });
      const dir = mkdtempSync(join(tmpdir(), "bunvmm-vsock-storm-"));
      const socketPath = join(dir, "v.sock");
      try {
        const vm = await startChildVm(
          [
            "[memory]",
            'size = "64M"',
            "[payload]",
            `kernel = ${JSON.stringify(elf)}`,
            'format = "elf"',
            "[serial]",
            'mode = "tty"',
            "[vsock]",
            `cid = ${GUEST_CID}`,
            `socket = ${JSON.stringify(socketPath)}`,
            'id = "vsock0"',
            "",
          ].join("\n"),
          null,
          dir,
        );
        try {
          await vm.waitLine(/^READY vsock$/, "the guest's driver up", BOOT_DEADLINE_MS);
          const sock = connect(socketPath);
          let handshake = "";
          let received = 0;
          let bad = 0;
          let closed = false;
          sock.on("data", (d: Buffer) => {
            let at = 0;
            if (!handshake.endsWith("\n")) {
              const nl = d.indexOf(0x0a);
              handshake += d.subarray(0, nl < 0 ? d.length : nl + 1).toString();
              if (nl < 0) return;
              at = nl + 1;
            }
            for (let i = at; i < d.length; i++) if (d[i] !== (received + i - at) % PATTERN_PERIOD) bad++;
            received += d.length - at;
          });
          sock.on("close", () => {
            closed = true;
          });
          sock.on("error", () => {
            closed = true;
          });
          sock.write(`CONNECT ${VSOCK_PORT}\n`);
          await waitUntil(() => handshake.endsWith("\n") || closed, "the vsock handshake", BOOT_DEADLINE_MS);
          expect(handshake).toMatch(/^OK \d+\n$/);
          // Both ways at once: the writer below, the storm beside it.
          const writer = (async () => {
            const chunk = new Uint8Array(CHUNK);
            for (let sent = 0; sent < VSOCK_BYTES && !closed; sent += CHUNK) {
              const n = Math.min(CHUNK, VSOCK_BYTES - sent);
              for (let i = 0; i < n; i++) chunk[i] = (sent + i) % PATTERN_PERIOD;
              // a VMM that exits closes the socket: stop waiting for room then
              if (!sock.write(chunk.slice(0, n)))
                await new Promise((r) => {
                  sock.once("drain", r);
                  sock.once("close", r);
                });
            }
          })();
          const rng = new Rng(SEED);
          const deadline = performance.now() + TRANSFER_DEADLINE_MS;
          let pairs = 0;
          const finished = () => vm.lines.some((l) => l.startsWith("vsock sent "));
          const step = async () => {
            await vm.pause();
            await randomGap(rng, MAX_GAP_MS);
            await vm.resume();
          };
          while (!finished() && performance.now() < deadline && (await stormStep(vm, finished, step))) {
            pairs++;
            await randomGap(rng, MAX_GAP_MS);
          }
          const [, gSent, gReceived, gBad, gUnacked] = (await vm.waitLine(
            /^vsock sent (\d+) received (\d+) bad (\d+) unacked (\d+)$/,
            "the guest's report",
            TRANSFER_DEADLINE_MS,
          )) as unknown as [string, string, string, string, string];
          await writer;
          await waitUntil(() => received >= VSOCK_BYTES || closed, "the guest's bytes", TRANSFER_DEADLINE_MS);
          expect(await vm.exited).toBe(0); // the guest powered off after its report
          await waitUntil(() => closed, "the host socket closing with the VM", TRANSFER_DEADLINE_MS);
          console.info(
            `seed ${SEED}: ${pairs} pause/resume pairs; host -> guest ${gReceived} bytes (${gBad} off the pattern), ` +
              `guest -> host ${received} bytes (${bad} off the pattern)`,
          );
          expect(pairs).toBeGreaterThan(0);
          expect(Number(gSent)).toBe(VSOCK_BYTES);
          expect(Number(gReceived)).toBe(VSOCK_BYTES);
          expect(Number(gBad)).toBe(0);
          expect(Number(gUnacked)).toBe(0);
          expect(received).toBe(VSOCK_BYTES);
          expect(bad).toBe(0);
          expect(vm.lines).toContain("DONE 0");
        } finally {
          await vm.stop();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    600_000,
  );
});
