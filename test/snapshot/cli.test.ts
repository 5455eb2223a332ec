/**
 * `bunvmm snapshot` and `bunvmm restore` as a user types them: a snapshot of a running VM is refused
 * (405, one line), a paused one is written; a restored VM starts Paused and answers the API; a bad
 * snapshot is one line and exit 1.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { apiFetch, waitForApi } from "../helpers/api-client.ts";
import { counterToml, remote, runWithApi, spawnBunvmm, tempDir } from "../helpers/bunvmm-child.ts";
import { expectOneLineError, runCli, SOURCE_CLI } from "../helpers/cli.ts";

const dir = tempDir();
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const snapshot = (socket: string, target: string) =>
  runCli([...SOURCE_CLI, "snapshot", "--api-socket", socket, target], { timeoutMs: 30_000 });

describe("bunvmm snapshot and bunvmm restore", () => {
  test("snapshot of a running VM is refused; of a paused one, written; restore starts Paused", async () => {
    const socket = join(dir, "a.sock");
    const target = join(dir, "snap");
    const child = await runWithApi(counterToml(dir, { boot: 2 }), socket);
    try {
      const running = await snapshot(socket, target);
      expectOneLineError(running, "cannot snapshot: the VM is Running");
      expect(existsSync(target)).toBe(false);
      expect((await remote(socket, "pause")).exitCode).toBe(0);
      const paused = await snapshot(socket, target);
      expect(paused.stdout).toBe(`snapshot written to ${target}\n`);
      expect(paused.exitCode).toBe(0);
      const again = await snapshot(socket, target);
      expectOneLineError(again, `snapshot destination ${target} is not empty`);
    } finally {
      await remote(socket, "shutdown-vmm");
      await child.result;
    }

    const restoredSocket = join(dir, "b.sock");
    const restored = spawnBunvmm(["restore", `file://${target}`, "--api-socket", restoredSocket]);
    try {
      await waitForApi(restoredSocket);
      const info = (await apiFetch(restoredSocket, "GET", "vm.info")).json<{
        state: string;
        config: { cpus: { boot_vcpus: number } };
      }>();
      expect(info.state).toBe("Paused");
      expect(info.config.cpus.boot_vcpus).toBe(2);
      expect((await apiFetch(restoredSocket, "PUT", "vm.resume")).status).toBe(204);
      expect((await apiFetch(restoredSocket, "GET", "vm.info")).json<{ state: string }>().state).toBe(
        "Running",
      );
    } finally {
      await apiFetch(restoredSocket, "PUT", "vmm.shutdown").catch(() => undefined);
      expect((await restored.result).exitCode).toBe(0);
    }
  }, 120_000);

  test("restore of a bad snapshot is one line and exit 1", async () => {
    const r = await runCli([...SOURCE_CLI, "restore", join(dir, "none")], { timeoutMs: 30_000 });
    expectOneLineError(r, `snapshot ${join(dir, "none")} does not exist`);
  });
});
