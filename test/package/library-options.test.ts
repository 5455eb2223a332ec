/**
 * The library's options in the config's own words: `serial` takes `{ mode: "tty" | "file" | "off" }`
 * like `[serial]` in a TOML file (the older `{ kind }` form still works), and `logLevel` sets how much
 * bunvmm logs without importing consola.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Vm } from "bunvmm";

const DEMO_DONE = "all 4 vCPUs said hello; powering off";

describe("Vm options", () => {
  test('serial: { mode: "file", file } writes the guest output to that file', async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunvmm-serial-"));
    try {
      const file = join(dir, "serial.log");
      await using vm = await Vm.create(undefined, { serial: { mode: "file", file }, logLevel: "silent" });
      await vm.boot();
      expect((await vm.exited).reason).toBe("poweroff");
      expect(readFileSync(file, "utf8")).toContain(DEMO_DONE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the older serial: { kind: "file", path } still works', async () => {
    const dir = mkdtempSync(join(tmpdir(), "bunvmm-serial-"));
    try {
      const path = join(dir, "serial.log");
      await using vm = await Vm.create(undefined, { serial: { kind: "file", path }, logLevel: "silent" });
      await vm.boot();
      expect((await vm.exited).reason).toBe("poweroff");
      expect(readFileSync(path, "utf8")).toContain(DEMO_DONE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('logLevel: "silent" keeps stderr quiet, "info" logs the boot (in a child process)', async () => {
    const script = (level: string) =>
      `import { Vm } from "bunvmm";
       await using vm = await Vm.create(undefined, { serial: { mode: "off" }, logLevel: "${level}" });
       await vm.boot();
       await vm.exited;`;
    const stderrOf = async (level: string) => {
      const p = Bun.spawn([process.execPath, "-e", script(level)], {
        cwd: join(import.meta.dir, "..", ".."),
        stdout: "pipe",
        stderr: "pipe",
        timeout: 60_000,
      });
      const [stdout, stderr, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ]);
      expect(code).toBe(0);
      expect(stdout).toBe(""); // serial mode "off"
      return stderr;
    };
    expect(await stderrOf("silent")).toBe("");
    expect(await stderrOf("info")).toContain("[info] [bunvmm] booting");
  });
});
