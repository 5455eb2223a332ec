/**
 * `bunvmm remote` against a real `bunvmm run --api-socket`: every command, its output (JSON that
 * matches docs/openapi.yaml for reads, one line for actions) and its one-line errors.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type BunvmmChild, counterToml, remote, runWithApi, tempDir } from "../helpers/bunvmm-child.ts";
import type { CliResult } from "../helpers/cli.ts";
import { schemaValidator } from "../helpers/openapi.ts";

setDefaultTimeout(90_000);

const dir = tempDir();
const socket = join(dir, "remote.sock");
let child: BunvmmChild;

beforeAll(async () => {
  child = await runWithApi(counterToml(dir, { boot: 2, max: 4 }), socket);
});
afterAll(async () => {
  if (child.proc.exitCode === null) child.proc.kill("SIGTERM");
  await child.result;
});

/** Success: exit 0, nothing on stderr; returns stdout. */
function ok(r: CliResult): string {
  expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: "" });
  return r.stdout;
}
/** A failure: exit 1, exactly one line on stderr containing `text`, nothing on stdout. */
function fails(r: CliResult, text: string): void {
  expect(r.exitCode).toBe(1);
  expect(r.stdout).toBe("");
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(text);
}
/** Reads print JSON matching the document's schema. */
// biome-ignore lint/suspicious/noExplicitAny: validated against the schema, then read freely
function json(out: string, schema: string): any {
  const value = JSON.parse(out);
  const validate = schemaValidator(`#/components/schemas/${schema}`);
  expect({ valid: validate(value), errors: validate.errors ?? null }).toEqual({ valid: true, errors: null });
  return value;
}
const info = async () => json(ok(await remote(socket, "info")), "VmInfo");

describe("bunvmm remote", () => {
  test("ping prints the VmmPingResponse of the bunvmm on the socket", async () => {
    expect(json(ok(await remote(socket, "ping")), "VmmPingResponse")).toMatchObject({
      pid: child.proc.pid,
      version: "0.1.0",
    });
  });

  test("info and counters print VmInfo and VmCounters", async () => {
    expect(await info()).toMatchObject({
      state: "Running",
      config: { cpus: { boot_vcpus: 2, max_vcpus: 4 } },
    });
    expect(Object.keys(json(ok(await remote(socket, "counters")), "VmCounters"))).toEqual(
      expect.arrayContaining(["vcpu0", "vcpu1", "serial"]),
    );
  });

  test("pause and resume print one line; a refused pause is one line naming the state, exit 1", async () => {
    expect(ok(await remote(socket, "pause"))).toBe("paused\n");
    expect((await info()).state).toBe("Paused");
    fails(await remote(socket, "pause"), "cannot pause: the VM is Paused");
    fails(await remote(socket, "power-button"), "cannot press the power button: the VM is Paused");
    expect(ok(await remote(socket, "resume"))).toBe("resumed\n");
    expect((await info()).state).toBe("Running");
  });

  test("the serving bunvmm logs each lifecycle operation of the API at info", async () => {
    expect(ok(await remote(socket, "pause"))).toBe("paused\n");
    expect(ok(await remote(socket, "resume"))).toBe("resumed\n");
    expect(child.stderr()).toContain("[info] [bunvmm] API vm.pause: paused\n");
    expect(child.stderr()).toContain("[info] [bunvmm] API vm.resume: resumed\n");
  });

  test("resize N hot-plugs vCPUs; a count out of range is the server's one-line 400", async () => {
    expect(ok(await remote(socket, "resize", "3"))).toBe("resized to 3 vCPU(s)\n");
    expect((await info()).config.cpus.boot_vcpus).toBe(3);
    fails(
      await remote(socket, "resize", "9"),
      "desired_vcpus = 9: expected an integer from 1 to 4 (cpus.max_vcpus)",
    );
  });

  test("resize --cpus N, ch-remote's spelling, works with = and with a space", async () => {
    expect(ok(await remote(socket, "resize", "--cpus=4"))).toBe("resized to 4 vCPU(s)\n");
    expect((await info()).config.cpus.boot_vcpus).toBe(4);
    expect(ok(await remote(socket, "resize", "--cpus", "4"))).toBe("resized to 4 vCPU(s)\n");
    expect(child.stderr()).toContain("[info] [bunvmm] API vm.resize: 3 -> 4 vCPUs\n");
  });

  test("a smaller count is reported as a pending removal, and the next resize waits for it", async () => {
    // The counter guest never ejects a CPU, so the removal stays pending.
    expect(ok(await remote(socket, "resize", "2"))).toBe(
      "resize to 2 vCPU(s) accepted; removal of vCPU(s) 2, 3 is pending until the guest ejects them\n",
    );
    expect(child.stderr()).toContain("API vm.resize: 4 -> 2 vCPUs, removal pending until the guest ejects");
    fails(await remote(socket, "resize", "3"), "cannot resize while vCPU 2 is being removed");
  });

  test("power-button and reboot print one line", async () => {
    expect(ok(await remote(socket, "power-button"))).toBe("power button pressed\n");
    expect(ok(await remote(socket, "reboot"))).toBe("rebooted\n");
    expect((await info()).state).toBe("Running");
  });

  test.each([
    [["frob"], 'unknown remote command "frob"; expected one of: ping, info, counters'],
    [["resize"], "resize needs a vCPU count: bunvmm remote --api-socket PATH resize N (or --cpus N)"],
    [["resize", "two"], 'resize "two": expected a vCPU count, a whole number from 1 to'],
    [["resize", "-1"], 'resize "-1": expected a vCPU count, a whole number from 1 to'],
    [["resize", "3.5"], 'resize "3.5": expected a vCPU count, a whole number from 1 to'],
    [["resize", "--cpus=0x2"], 'resize "0x2": expected a vCPU count'],
    [["resize", "2", "--cpus", "3"], "give the vCPU count once: --cpus 3 or 2, not both"],
    [["pause", "now"], 'pause takes no argument (got "now")'],
  ])("%j is a one-line usage error", async (args, message) => {
    fails(await remote(socket, ...args), message);
  });

  test("without --api-socket it says so in one line", async () => {
    const { runCli, SOURCE_CLI } = await import("../helpers/cli.ts");
    fails(await runCli([...SOURCE_CLI, "remote", "ping"]), "--api-socket");
  });

  test("a socket nobody listens on: no bunvmm is listening on PATH", async () => {
    const missing = join(dir, "nobody.sock");
    fails(await remote(missing, "ping"), `no bunvmm is listening on ${missing}`);
  });

  test("shutdown stops the VM: the bunvmm exits 0, its socket goes, and the next command finds nobody", async () => {
    expect(ok(await remote(socket, "shutdown"))).toBe("shut down\n");
    expect((await child.result).exitCode).toBe(0);
    expect(existsSync(socket)).toBe(false);
    fails(await remote(socket, "info"), `no bunvmm is listening on ${socket}`);
  });

  test("shutdown-vmm ends another bunvmm with exit 0", async () => {
    const other = join(dir, "other.sock");
    const second = await runWithApi(counterToml(dir), other);
    expect(ok(await remote(other, "shutdown-vmm"))).toBe("bunvmm shut down\n");
    expect((await second.result).exitCode).toBe(0);
    expect(existsSync(other)).toBe(false);
  });
});
