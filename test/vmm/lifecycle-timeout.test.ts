/**
 * The lifecycle deadline (`[vmm] lifecycle_timeout_ms`, the library's `timeoutMs`, the CLI's
 * `--lifecycle-timeout-ms`): each source is checked alike, the one in force is what `vm.config` and
 * vm.info report, and a VM runs its pause and resume under it. On real KVM with the counter guest.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, Vm } from "bunvmm";
import { remote, runWithApi, tempDir } from "../helpers/bunvmm-child.ts";
import { expectOneLineError, runCli, SOURCE_CLI } from "../helpers/cli.ts";
import { guestImage, rawGuestConfig } from "../helpers/guests.ts";

setDefaultTimeout(60_000);

const QUIET = { serial: { kind: "none" } as const };
const EXPECTED = "expected an integer number of milliseconds from 10 to 60000";

describe("the lifecycle deadline", () => {
  test("comes from [vmm] lifecycle_timeout_ms, 1000 ms by default; pause and resume run under it", async () => {
    await using byDefault = await Vm.create(rawGuestConfig("counter"), QUIET);
    expect(byDefault.config.vmm.lifecycle_timeout_ms).toBe(1000);

    const config = { ...rawGuestConfig("counter", { boot: 2 }), vmm: { lifecycle_timeout_ms: 750 } };
    await using vm = await Vm.create(config, QUIET);
    expect(vm.config.vmm.lifecycle_timeout_ms).toBe(750);
    await vm.boot();
    await vm.pause();
    expect(vm.state).toBe("Paused");
    await vm.resume();
    expect(vm.state).toBe("Running");
  });

  test("the library's timeoutMs overrides the file's key and is reported in its place", async () => {
    const config = { ...rawGuestConfig("counter"), vmm: { lifecycle_timeout_ms: 750 } };
    await using vm = await Vm.create(config, { ...QUIET, timeoutMs: 300 });
    expect(vm.config.vmm.lifecycle_timeout_ms).toBe(300);
  });

  test.each([
    [5, "timeoutMs = 5"],
    [60_001, "timeoutMs = 60001"],
    [1.5, "timeoutMs = 1.5"],
    [Number.NaN, "timeoutMs = nan"],
  ])("a bad timeoutMs (%p) is a ConfigError naming it, its value and the range", async (value, shown) => {
    const error = await Vm.create(rawGuestConfig("counter"), { ...QUIET, timeoutMs: value }).catch((e) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(`${shown}: ${EXPECTED}`);
    expect(error.key).toBe("timeoutMs");
  });

  test.each([
    ["5", "--lifecycle-timeout-ms = 5"],
    ["1s", '--lifecycle-timeout-ms = "1s"'],
    ["-20", '--lifecycle-timeout-ms = "-20"'],
  ])(
    "bunvmm run --lifecycle-timeout-ms %s is a one-line error naming the flag, the value and the range",
    async (value, shown) => {
      const dir = mkdtempSync(join(tmpdir(), "bunvmm-timeout-"));
      const path = join(dir, "vm.toml");
      writeFileSync(
        path,
        `[payload]\nkernel = "${guestImage("counter")}"\nformat = "raw"\n[serial]\nmode = "off"\n`,
      );
      const r = await runCli([...SOURCE_CLI, "run", path, "--lifecycle-timeout-ms", value]);
      expectOneLineError(r, `${shown}: ${EXPECTED}`);
    },
  );

  test("bunvmm run --lifecycle-timeout-ms overrides the file, and vm.info reports it", async () => {
    const dir = tempDir();
    const path = join(dir, "vm.toml");
    writeFileSync(
      path,
      `[payload]\nkernel = "${guestImage("counter")}"\nformat = "raw"\n[memory]\nsize = "16M"\n` +
        `[serial]\nmode = "off"\n[vmm]\nlifecycle_timeout_ms = 750\n`,
    );
    const socket = join(dir, "api.sock");
    const child = await runWithApi(path, socket, ["--lifecycle-timeout-ms", "2500"]);
    try {
      const info = await remote(socket, "info");
      expect(info.exitCode).toBe(0);
      expect(JSON.parse(info.stdout).config.vmm).toEqual({ lifecycle_timeout_ms: 2500 });
      expect((await remote(socket, "pause")).exitCode).toBe(0);
      expect((await remote(socket, "resume")).exitCode).toBe(0);
    } finally {
      child.proc.kill("SIGTERM");
    }
    expect((await child.result).exitCode).toBe(0);
  });
});
