/**
 * `bun build --compile` makes one executable that passes the same smoke test as the source tree: the
 * demo from every vCPU (Workers inside the binary), a VM with virtio devices (their device workers are
 * in the binary too), a clear error, and --version.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import packageJson from "../../package.json" with { type: "json" };
import { compiledEntryPoints } from "../../src/vmm/worker-entries.ts";
import { cGuestElf } from "../helpers/c-guest.ts";
import { BUN, REPO, runCli } from "../helpers/cli.ts";

const outDir = mkdtempSync(join(tmpdir(), "bunvmm-binary-"));
const binary = join(outDir, "bunvmm");

describe("compiled binary", () => {
  beforeAll(() => {
    const build = Bun.spawnSync([BUN, "build", "--compile", ...compiledEntryPoints(), "--outfile", binary], {
      cwd: REPO,
      stderr: "pipe",
    });
    if (build.exitCode !== 0) throw new Error(`bun build --compile failed: ${build.stderr.toString()}`);
  });

  test("runs the demo from another directory: every vCPU greets, exit 0", async () => {
    const r = await runCli([binary, "run"], { cwd: outDir });
    expect(r.exitCode).toBe(0);
    for (const id of [0, 1, 2, 3]) expect(r.stdout).toContain(`hello from the vCPU with APIC id ${id}\n`);
    expect(r.stdout).toContain("all 4 vCPUs said hello; powering off");
  });

  test("runs a VM with a disk, an rng and a console: the virtio device workers are inside the binary", async () => {
    writeFileSync(join(outDir, "disk.img"), new Uint8Array(1 << 16));
    const config = [
      "[memory]",
      'size = "32M"',
      "[payload]",
      `kernel = ${JSON.stringify(cGuestElf(["acpi.c", "virtio-guest.c"]))}`,
      'format = "elf"',
      "[[disks]]",
      'path = "disk.img"',
      "[rng]",
      "[console]",
      'mode = "file"',
      'file = "hvc0.log"',
    ].join("\n");
    writeFileSync(join(outDir, "virtio.toml"), `${config}\n`);
    const r = await runCli([binary, "run", "virtio.toml"], { cwd: outDir });
    expect(r.exitCode).toBe(0);
    for (const step of ["read0", "write1", "rng", "console"]) expect(r.stdout).toContain(`${step} ok\n`);
    expect(r.stdout).toEndWith("DONE 0\n");
    expect(readFileSync(join(outDir, "hvc0.log"), "utf8")).toBe("hello from the virtio console\n");
  });

  test("prints its version and one-line errors like the source tree", async () => {
    expect((await runCli([binary, "--version"], { cwd: outDir })).stdout).toBe(
      `bunvmm ${packageJson.version}\n`,
    );
    const r = await runCli([binary, "run", "missing.toml"], { cwd: outDir });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toBe(`[error] [bunvmm] config file not found: ${join(outDir, "missing.toml")}`);
  });
});
