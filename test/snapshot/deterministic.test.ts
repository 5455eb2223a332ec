/**
 * A deterministic guest (test/guests/deterministic.S: a long computation over guest RAM that prints its
 * progress and a result) prints exactly what an uninterrupted run prints, when it is snapshotted and
 * restored at random points: in-process through the library, and as a user does it, through the REST
 * API, with the first VMM killed and `bunvmm restore --resume` taking over.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Vm } from "../../src/index.ts";
import { apiFetch, waitForApi } from "../helpers/api-client.ts";
import { SOURCE_CLI } from "../helpers/cli.ts";
import { guestImage, rawGuestConfig, waitUntil } from "../helpers/guests.ts";
import { Rng } from "../helpers/rng.ts";

const QUIET = { logLevel: "silent" } as const;
/** The whole run takes a few seconds here; every wait below is bounded well past it. */
const RUN_DEADLINE_MS = 60_000;
/** No snapshot point in the last three progress lines: the guest must still be running there. */
const TAIL_BYTES = 64;
const work = mkdtempSync(join(tmpdir(), "bunvmm-det-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let uninterrupted: string;
beforeAll(async () => {
  await using vm = await Vm.create(rawGuestConfig("deterministic"), QUIET);
  await vm.boot();
  expect((await vm.exited).reason).toBe("poweroff");
  uninterrupted = vm.serial.text;
  expect(uninterrupted).toMatch(
    /^step 01 sum [0-9a-f]{8}\n[\s\S]*step 16 sum [0-9a-f]{8}\nresult [0-9a-f]{8}\n$/,
  );
}, RUN_DEADLINE_MS);

describe("a deterministic guest snapshotted and restored", () => {
  test(
    "at random points in-process: the same output and result as uninterrupted",
    async () => {
      const seed = Number(process.env.BUNVMM_SEED ?? Date.now() % 1_000_000);
      const rng = new Rng(seed);
      let printed = ""; // what every VM so far printed, in order
      // Three random points in the output, mid-line as often as not, the last a few steps before the
      // end (the guest must still be running when it is paused there).
      const cuts = Array.from({ length: 3 }, () => 1 + rng.int(uninterrupted.length - TAIL_BYTES)).sort(
        (a, b) => a - b,
      );
      let vm = await Vm.create(rawGuestConfig("deterministic"), QUIET);
      await vm.boot();
      try {
        for (const [i, at] of cuts.entries()) {
          await waitUntil(
            () => printed.length + vm.serial.text.length >= at,
            `output to reach ${at} bytes (seed ${seed})`,
            RUN_DEADLINE_MS,
          );
          await vm.pause();
          const dir = join(work, `in-process-${i}`);
          await vm.snapshot(dir);
          await vm.shutdown();
          printed += vm.serial.text; // shutdown drained the console
          vm = await Vm.restore(dir, { ...QUIET, resume: true });
        }
        expect((await vm.exited).reason).toBe("poweroff");
        printed += vm.serial.text;
      } finally {
        await vm.shutdown();
      }
      expect(printed).toBe(uninterrupted);
    },
    RUN_DEADLINE_MS,
  );

  test(
    "through the REST API, the VMM killed, then bunvmm restore --resume: output continues where it stopped",
    async () => {
      const config = join(work, "deterministic.toml");
      writeFileSync(
        config,
        `[payload]\nkernel = "${guestImage("deterministic")}"\nformat = "raw"\n[memory]\nsize = "64M"\n[serial]\nmode = "tty"\n`,
      );
      const socket = join(work, "api.sock");
      const first = Bun.spawn([...SOURCE_CLI, "run", config, "--api-socket", socket, "--log-level", "warn"], {
        stdout: "pipe",
        stderr: "pipe",
        stdin: "ignore",
      });
      const lifetime = setTimeout(() => first.kill("SIGKILL"), RUN_DEADLINE_MS); // deadline on the whole run
      let before = "";
      const reading = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of first.stdout) before += decoder.decode(chunk, { stream: true });
      })();
      try {
        await waitForApi(socket);
        await waitUntil(
          () => before.split("\n").length > 4,
          "the first VMM printing a few steps",
          RUN_DEADLINE_MS,
        );
        expect((await apiFetch(socket, "PUT", "vm.pause")).status).toBe(204);
        const dir = join(work, "via-api");
        const answer = await apiFetch(socket, "PUT", "vm.snapshot", {
          destination_url: pathToFileURL(dir).href,
        });
        expect(answer.status).toBe(204);
        // Everything the guest printed before the pause has reached our pipe: then the VMM dies.
        const out = (await apiFetch(socket, "GET", "vm.counters")).json<{ serial: { bytes_out: number } }>();
        await waitUntil(() => Buffer.byteLength(before) >= out.serial.bytes_out, "the serial output drained");
        first.kill("SIGKILL");
        await first.exited;
        await reading;
        expect(uninterrupted.startsWith(before)).toBe(true);
        expect(before.length).toBeLessThan(uninterrupted.length);

        const second = Bun.spawn([...SOURCE_CLI, "restore", dir, "--resume", "--log-level", "warn"], {
          stdout: "pipe",
          stderr: "pipe",
          stdin: "ignore",
        });
        const secondLife = setTimeout(() => second.kill("SIGKILL"), RUN_DEADLINE_MS);
        const [after, stderr] = await Promise.all([
          new Response(second.stdout).text(),
          new Response(second.stderr).text(),
        ]);
        clearTimeout(secondLife);
        expect(await second.exited).toBe(0);
        expect(stderr).toBe("");
        expect(before + after).toBe(uninterrupted); // progress continues exactly where it stopped
      } finally {
        clearTimeout(lifetime);
        first.kill("SIGKILL");
      }
    },
    RUN_DEADLINE_MS * 2,
  );
});
