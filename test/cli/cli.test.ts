/**
 * The `bunvmm` command as a user runs it: the demo, every class of bad input (one clear line, a
 * non-zero exit, no stack trace), guests that crash, and signals.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import packageJson from "../../package.json" with { type: "json" };
import { runAsNobody } from "../helpers/as-nobody.ts";
import { cGuestElf } from "../helpers/c-guest.ts";
import { expectOneLineError, REPO, runCli, SOURCE_CLI } from "../helpers/cli.ts";
import { guestImage } from "../helpers/guests.ts";

const dir = mkdtempSync(join(tmpdir(), "bunvmm-cli-"));
function toml(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
function rawToml(name: string, guest: string, extra = ""): string {
  return toml(
    name,
    `[payload]\nkernel = "${guestImage(guest)}"\nformat = "raw"\n[memory]\nsize = "16M"\n${extra}`,
  );
}

describe("bunvmm run", () => {
  test("with no config boots the demo: guest lines on stdout, logs on stderr, exit 0", async () => {
    const r = await runCli([...SOURCE_CLI, "run"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(
      [0, 1, 2, 3].map((id) => `bunvmm demo: hello from the vCPU with APIC id ${id}\n`).join("") +
        "bunvmm demo: all 4 vCPUs said hello; powering off\n",
    );
    expect(r.stderr).toContain("the VM stopped: poweroff");
  });

  test("--log-level warn keeps stderr quiet on success", async () => {
    const r = await runCli([...SOURCE_CLI, "run", "--log-level", "warn"]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe("");
  });

  test("serial mode file writes the guest's output to the file, not stdout", async () => {
    const out = join(dir, "serial.log");
    const r = await runCli([
      ...SOURCE_CLI,
      "run",
      toml("file.toml", `[serial]\nmode = "file"\nfile = "${out}"\n`),
    ]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("");
    expect(await Bun.file(out).text()).toContain("all 1 vCPUs said hello");
  });

  test("a missing config file names the path", async () => {
    expectOneLineError(
      await runCli([...SOURCE_CLI, "run", join(dir, "nope.toml")]),
      `config file not found: ${join(dir, "nope.toml")}`,
    );
  });

  test.each([
    ["[cpus]\nboot_vcpus = 0\n", "cpus.boot_vcpus = 0: expected an integer from 1 to 255"],
    ["[cpus]\nboot_vcpu = 2\n", 'cpus.boot_vcpu: unknown key (did you mean "boot_vcpus"?)'],
    [
      '[memory]\nsize = "512X"\n',
      'memory.size = "512X": expected a size like "512M", "1G" or a number of bytes',
    ],
    ['[serial]\nmode = "pty"\n', 'serial.mode = "pty": expected one of "tty", "file", "off"'],
    ["[cpus\n", "TOML syntax error"],
  ])("a bad config %j gets one line naming key, value and expectation", async (text, message) => {
    expectOneLineError(await runCli([...SOURCE_CLI, "run", toml("bad.toml", text)]), message);
  });

  test("a missing kernel file names the path", async () => {
    const r = await runCli([
      ...SOURCE_CLI,
      "run",
      toml("k.toml", `[payload]\nkernel = "${join(dir, "vmlinuz")}"\n`),
    ]);
    expectOneLineError(r, `file not found: ${join(dir, "vmlinuz")}`);
  });

  test("a kernel that is neither bzImage nor ELF says so and how to boot a flat binary", async () => {
    const r = await runCli([
      ...SOURCE_CLI,
      "run",
      toml("n.toml", `[payload]\nkernel = "${guestImage("echo")}"\n`),
    ]);
    expectOneLineError(
      r,
      'neither a bzImage (no "HdrS" at 0x202) nor an ELF vmlinux; for a flat binary set payload.format = "raw"',
    );
  });

  test("an unreadable /dev/kvm gets the ioctl-style hint", async () => {
    // As nobody for this one run: /dev/kvm is root-only here.
    const r = runAsNobody(join(REPO, "src", "cli", "main.ts"), ["run"]);
    expectOneLineError(r, "open /dev/kvm: permission denied (EACCES): can you open /dev/kvm?");
  });

  test("a guest that triple-faults: one error line with RIP and bytes, registers, exit 2", async () => {
    const r = await runCli([...SOURCE_CLI, "run", rawToml("tf.toml", "triple-fault")]);
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe("T");
    expect(r.stderr).toMatch(
      /\[error\] \[bunvmm\] vCPU 0 stopped: the guest triple-faulted \(KVM_EXIT_SHUTDOWN\) at RIP 0x1000e .*bytes 0f 0b/,
    );
    expect(r.stderr).toContain("rip=0x1000e");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test("a guest running an instruction KVM cannot emulate: exit 2 with the report", async () => {
    const r = await runCli([...SOURCE_CLI, "run", rawToml("ui.toml", "unsupported-instruction")]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("KVM_EXIT_INTERNAL_ERROR, emulation failure");
  });

  test("SIGTERM shuts a running VM down and exits 0", async () => {
    const proc = Bun.spawn([...SOURCE_CLI, "run", rawToml("echo.toml", "echo")], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const killer = setTimeout(() => proc.kill("SIGKILL"), 30_000); // deadline for the whole test
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("ready\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    expect(out).toBe("ready\n");
    proc.kill("SIGTERM");
    const stderr = await new Response(proc.stderr).text();
    await proc.exited;
    clearTimeout(killer);
    expect(proc.exitCode).toBe(0);
    expect(stderr).toContain("SIGTERM: shutting the VM down");
    expect(stderr).toContain("the VM stopped: shutdown");
  });
});

describe("bunvmm validate", () => {
  test("prints the resolved config as JSON", async () => {
    const r = await runCli([
      ...SOURCE_CLI,
      "validate",
      toml("v.toml", '[cpus]\nboot_vcpus = 2\n[memory]\nsize = "1G"\n'),
    ]);
    expect(r.exitCode).toBe(0);
    const config = JSON.parse(r.stdout);
    expect(config.cpus).toEqual({ boot_vcpus: 2, max_vcpus: 2, hide_features: [] });
    expect(config.memory.size).toBe(1 << 30);
    expect(config.serial.mode).toBe("tty");
  });
});

describe("bunvmm", () => {
  test("--version names the program and its version", async () => {
    const r = await runCli([...SOURCE_CLI, "--version"]);
    expect(r.stdout).toBe(`bunvmm ${packageJson.version}\n`);
  });

  test("an unknown command lists the commands and exits 1", async () => {
    const r = await runCli([...SOURCE_CLI, "frobnicate"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      'unknown command "frobnicate"; expected one of: run, validate, remote, acpi-tables',
    );
  });
});

describe("bunvmm acpi-tables", () => {
  test("run with a disk image that is not whole sectors: one line naming the key, exit 1", async () => {
    const image = join(dir, "odd-disk.img");
    writeFileSync(image, new Uint8Array(513));
    const r = await runCli([
      ...SOURCE_CLI,
      "run",
      toml("odd-disk.toml", '[[disks]]\npath = "odd-disk.img"\n'),
    ]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim()).toBe(
      `[error] [bunvmm] disks.0.path = "${image}": disk image ${image} is 513 bytes, not a whole number of 512-byte sectors`,
    );
  });

  test('run with console.mode = "tty": what the guest sends on the virtio console reaches stdout', async () => {
    writeFileSync(join(dir, "tty-disk.img"), new Uint8Array(1 << 16));
    const kernel = JSON.stringify(cGuestElf(["acpi.c", "virtio-guest.c"]));
    const config = [
      `[memory]\nsize = "32M"\n[payload]\nkernel = ${kernel}\nformat = "elf"`,
      '[serial]\nmode = "off"\n[[disks]]\npath = "tty-disk.img"\n[console]\nmode = "tty"\n',
    ].join("\n");
    const r = await runCli([...SOURCE_CLI, "run", toml("virtio-tty.toml", config)]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("hello from the virtio console\n"); // COM1 is off: only hvc0's bytes
  });

  test("acpi-tables describes the config's virtio devices without opening them", async () => {
    const out = join(dir, "virtio-tables");
    writeFileSync(join(dir, "acpi-disk.img"), new Uint8Array(1));
    const r = await runCli([
      ...SOURCE_CLI,
      "acpi-tables",
      toml("acpi-virtio.toml", '[[disks]]\npath = "acpi-disk.img"\n[rng]\n'),
      "--out",
      out,
    ]);
    expect(r.exitCode).toBe(0); // a 1-byte image would stop `run`; nothing here opens it
    const { platformAcpiTables } = await import("../../src/vmm/platform.ts");
    const devices = {
      disks: [{ path: join(dir, "acpi-disk.img"), readonly: false, direct: false, id: "disk0" }],
      rng: { src: "/dev/urandom" },
      console: { mode: "off" as const },
    };
    const dsdt = platformAcpiTables({ bootVcpus: 1, maxVcpus: 1 }, undefined, devices).tables.get("DSDT")!;
    const written = new Uint8Array(await Bun.file(join(out, "dsdt.dat")).arrayBuffer());
    expect(Buffer.from(written).equals(Buffer.from(dsdt))).toBe(true);
    expect(Buffer.from(written).toString("latin1").split("LNRO0005").length - 1).toBe(2);
  });

  test("writes each table a VM with this config gets as <signature>.dat, which iasl disassembles", async () => {
    const out = join(dir, "tables");
    const r = await runCli([
      ...SOURCE_CLI,
      "acpi-tables",
      toml("acpi.toml", "[cpus]\nboot_vcpus = 2\nmax_vcpus = 8\n"),
      "--out",
      out,
    ]);
    expect(r.exitCode).toBe(0);
    const { platformAcpiTables } = await import("../../src/vmm/platform.ts");
    const expected = platformAcpiTables({ bootVcpus: 2, maxVcpus: 8 });
    for (const [signature, bytes] of expected.tables) {
      const written = new Uint8Array(
        await Bun.file(join(out, `${signature.toLowerCase()}.dat`)).arrayBuffer(),
      );
      expect(Buffer.from(written).equals(Buffer.from(bytes))).toBe(true);
    }
    const iasl = Bun.spawnSync(["iasl", "-d", join(out, "apic.dat")], {
      cwd: out,
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(iasl.exitCode).toBe(0);
    expect(await Bun.file(join(out, "apic.dsl")).text()).toContain("Local Apic Address : FEE00000");
  });
});
