/**
 * `bunvmm run --api-socket` as a separate process, driven with curl and Bun's fetch as a user would:
 * the lifecycle flows, how the process and its socket end, and socket ownership between processes.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { apiFetch, curl, isSocket } from "../helpers/api-client.ts";
import { counterToml, runWithApi, spawnBunvmm, tempDir } from "../helpers/bunvmm-child.ts";
import { expectOneLineError } from "../helpers/cli.ts";
import { waitUntil } from "../helpers/guests.ts";

setDefaultTimeout(90_000);

const dir = tempDir();
let n = 0;
const nextSocket = () => join(dir, `run-${n++}.sock`);

describe("bunvmm run --api-socket", () => {
  test("curl: vm.pause, vm.info Paused, vm.resume, vm.info Running, vm.shutdown: exit 0 and the socket is gone", async () => {
    const socket = nextSocket();
    const child = await runWithApi(counterToml(dir), socket);
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect((await curl(socket, "GET", "vm.info")).json().state).toBe("Running");
    expect((await curl(socket, "PUT", "vm.pause")).status).toBe(204);
    expect((await curl(socket, "GET", "vm.info")).json().state).toBe("Paused");
    const refused = await curl(socket, "PUT", "vm.pause");
    expect([refused.status, refused.json()]).toEqual([405, { error: "cannot pause: the VM is Paused" }]);
    expect((await curl(socket, "PUT", "vm.resume")).status).toBe(204);
    expect((await curl(socket, "GET", "vm.info")).json().state).toBe("Running");
    expect((await curl(socket, "PUT", "vm.shutdown")).status).toBe(204);
    const r = await child.result;
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(`REST API on ${socket}`);
    expect(r.stderr).toContain("the VM stopped: shutdown");
    expect(existsSync(socket)).toBe(false);
  });

  test("curl vmm.shutdown: answered 204, then the process exits 0 and removes its socket", async () => {
    const socket = nextSocket();
    const child = await runWithApi(counterToml(dir), socket);
    expect((await curl(socket, "PUT", "vmm.shutdown")).status).toBe(204);
    const r = await child.result;
    expect(r.exitCode).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });

  test.each(["SIGINT", "SIGTERM"] as const)("%s stops the VM and removes the socket", async (signal) => {
    const socket = nextSocket();
    const child = await runWithApi(counterToml(dir), socket);
    expect((await apiFetch(socket, "PUT", "vm.pause")).status).toBe(204);
    child.proc.kill(signal);
    const r = await child.result;
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(`${signal}: shutting the VM down`);
    expect(existsSync(socket)).toBe(false);
  });

  test("the socket goes when the guest powers off by itself", async () => {
    const socket = nextSocket();
    const r = await spawnBunvmm(["run", "--api-socket", socket]).result; // the demo powers off
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(`REST API on ${socket}`);
    expect(existsSync(socket)).toBe(false);
  });

  test("[api] socket in the config is served, and --api-socket wins over it", async () => {
    const fromConfig = nextSocket();
    const config = counterToml(dir, { extra: `[api]\nsocket = "${fromConfig}"\n` });
    const child = await runWithApi(config, fromConfig, []);
    expect((await apiFetch(fromConfig, "GET", "vm.info")).json().config.api).toEqual({ socket: fromConfig });
    await apiFetch(fromConfig, "PUT", "vmm.shutdown");
    expect((await child.result).exitCode).toBe(0);

    const fromFlag = nextSocket();
    const flagged = await runWithApi(config, fromFlag);
    expect(existsSync(fromConfig)).toBe(false);
    await apiFetch(fromFlag, "PUT", "vmm.shutdown");
    expect((await flagged.result).exitCode).toBe(0);
  });

  test("a second bunvmm on a live socket fails with one line and leaves the first alone", async () => {
    const socket = nextSocket();
    const first = await runWithApi(counterToml(dir), socket);
    const second = await spawnBunvmm(["run", counterToml(dir), "--api-socket", socket]).result;
    expectOneLineError(second, `api socket ${socket} is in use by another process`);
    const ping = (await apiFetch(socket, "GET", "vmm.ping")).json();
    expect(ping.pid).toBe(first.proc.pid);
    await apiFetch(socket, "PUT", "vmm.shutdown");
    expect((await first.result).exitCode).toBe(0);
  });

  test("a stale socket left by a killed bunvmm is replaced", async () => {
    const socket = nextSocket();
    const killed = await runWithApi(counterToml(dir), socket);
    killed.proc.kill("SIGKILL");
    await killed.result;
    expect(isSocket(socket)).toBe(true); // SIGKILL leaves it behind
    const next = await runWithApi(counterToml(dir), socket);
    expect((await apiFetch(socket, "GET", "vmm.ping")).json().pid).toBe(next.proc.pid);
    next.proc.kill("SIGTERM");
    expect((await next.result).exitCode).toBe(0);
    await waitUntil(() => !existsSync(socket), "the socket to be removed", 15_000);
  });
});
