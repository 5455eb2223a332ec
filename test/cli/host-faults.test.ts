/**
 * `bunvmm run` when the host lets it down, as a new user meets it: a serial file that refuses writes (a
 * full tmpfs, /proc/version), stdout closed by `| head -1`, SIGHUP from a closing terminal, paths that
 * cannot work (acpi-tables --out a file, sockets and serial files in missing directories), and a guest
 * crash logged at quieter levels. One line each, never a stack trace, and the process always ends.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiFetch } from "../helpers/api-client.ts";
import { counterToml, runWithApi, spawnBunvmm } from "../helpers/bunvmm-child.ts";
import { expectOneLineError, runCli, SOURCE_CLI } from "../helpers/cli.ts";
import { guestImage, waitUntil } from "../helpers/guests.ts";

setDefaultTimeout(90_000);

const dir = mkdtempSync(join(tmpdir(), "bunvmm-faults-"));
let n = 0;
const nextSocket = () => join(dir, `f-${n++}.sock`);

/** A config for test/guests/GUEST.S (echo prints "ready\n", then echoes input upper-cased) plus `extra`. */
function guestToml(guest: string, extra = ""): string {
  const path = join(dir, `${guest}-${n++}.toml`);
  writeFileSync(
    path,
    `[payload]\nkernel = "${guestImage(guest)}"\nformat = "raw"\n[memory]\nsize = "16M"\n${extra}`,
  );
  return path;
}

/** Lines bunvmm logged at error level. */
const errorLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("[error]"));

/** A 4 KiB tmpfs, filled up, so that the first write to a new file in it fails with ENOSPC. */
function fullTmpfs(): string {
  const mountPoint = join(dir, `tmpfs-${n++}`);
  mkdirSync(mountPoint);
  const mount = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", mountPoint], {
    stderr: "pipe",
  });
  expect(mount.exitCode).toBe(0);
  mounts.push(mountPoint);
  // Fill it: the write that does not fit stops with ENOSPC; what fitted stays.
  const dd = Bun.spawnSync(["dd", "if=/dev/zero", `of=${join(mountPoint, "fill")}`, "bs=1k", "count=64"], {
    stderr: "pipe",
  });
  expect(dd.stderr.toString()).toContain("No space left on device");
  return mountPoint;
}
const mounts: string[] = [];
afterAll(() => {
  for (const m of mounts) Bun.spawnSync(["umount", m]);
});

describe("a serial file that refuses writes (issue 9 item 1)", () => {
  test.each([
    ["a full tmpfs", "ENOSPC", () => join(fullTmpfs(), "serial.log")],
    ["/proc/version", "EIO", () => "/proc/version"],
  ])(
    "%s: one error line, output dropped and counted, the VM runs on, SIGTERM ends it",
    async (_what, code, path) => {
      const socket = nextSocket();
      const child = await runWithApi(
        guestToml("echo", `[serial]\nmode = "file"\nfile = "${path()}"\n`),
        socket,
      );
      await waitUntil(() => child.stderr().includes(`(${code})`), `the ${code} line`, 30_000);
      const counters = (await apiFetch(socket, "GET", "vm.counters")).json();
      expect(counters.serial.bytes_out).toBe("ready\n".length);
      expect(counters.serial.bytes_dropped).toBe("ready\n".length);
      expect((await apiFetch(socket, "GET", "vm.info")).json().state).toBe("Running");
      child.proc.kill("SIGTERM");
      const r = await child.result;
      expect(r.signal).toBeNull(); // not the test's SIGKILL at the deadline
      expect(r.exitCode).toBe(0);
      expect(errorLines(r.stderr)).toHaveLength(1);
      expect(errorLines(r.stderr)[0]).toMatch(
        new RegExp(
          `^\\[error\\] \\[bunvmm\\] serial file .* failed: .*\\(${code}\\); guest output is dropped`,
        ),
      );
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stderr).toContain("the VM stopped: shutdown");
    },
  );
});

describe("stdout closed under the guest's output (issue 9 item 2)", () => {
  test("the reader goes away (as `| head -1` does): no stack trace, the VM is shut down, exit 141", async () => {
    const proc = Bun.spawn([...SOURCE_CLI, "run", guestToml("echo")], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    const killer = setTimeout(() => proc.kill("SIGKILL"), 60_000); // deadline on the whole run
    const stderr = new Response(proc.stderr).text();
    const reader = proc.stdout.getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    expect(out).toBe("ready\n");
    await reader.cancel(); // closes our end of the pipe, as head does once it has its line
    proc.stdin.write("a"); // the guest echoes "A" into the closed pipe
    await proc.stdin.flush();
    await proc.exited;
    clearTimeout(killer);
    const err = await stderr;
    expect(proc.signalCode).toBeNull();
    expect(proc.exitCode).toBe(141);
    expect(err).toContain("stdout was closed: shutting the VM down");
    expect(err).not.toContain("EPIPE");
    expect(err).not.toMatch(/\n\s+at /);
    expect(errorLines(err)).toEqual([]);
  });
});

describe("SIGHUP (issue 9 item 7)", () => {
  test("shuts the VM down like SIGTERM and removes the API socket", async () => {
    const socket = nextSocket();
    const child = await runWithApi(counterToml(dir), socket);
    child.proc.kill("SIGHUP");
    const r = await child.result;
    expect(r.signal).toBeNull();
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain("SIGHUP: shutting the VM down");
    expect(r.stderr).toContain("the VM stopped: shutdown");
    expect(existsSync(socket)).toBe(false);
  });
});

describe("host errors a user can cause get one line (issue 9 item 6)", () => {
  test("acpi-tables --out an existing file", async () => {
    const file = join(dir, "not-a-dir");
    writeFileSync(file, "");
    const config = join(dir, "acpi.toml");
    writeFileSync(config, "[cpus]\nboot_vcpus = 1\n");
    expectOneLineError(
      await runCli([...SOURCE_CLI, "acpi-tables", config, "--out", file]),
      `acpi-tables --out ${file}: exists and is not a directory`,
    );
  });

  test("a serial file in a directory that does not exist", async () => {
    const missing = join(dir, "no-such-dir");
    expectOneLineError(
      await runCli([
        ...SOURCE_CLI,
        "run",
        guestToml("echo", `[serial]\nmode = "file"\nfile = "${missing}/s.log"\n`),
      ]),
      `serial.file = "${missing}/s.log": directory not found: ${missing}`,
    );
  });

  test("an API socket in a directory that does not exist", async () => {
    const missing = join(dir, "no-such-dir");
    const r = await spawnBunvmm(["run", guestToml("echo"), "--api-socket", join(missing, "api.sock")]).result;
    expectOneLineError(r, `api socket ${join(missing, "api.sock")}: directory not found: ${missing}`);
  });

  test.each(["warn", "error"])("a guest crash prints its whole report at --log-level %s", async (level) => {
    const r = await runCli([...SOURCE_CLI, "run", guestToml("triple-fault"), "--log-level", level]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^\[error\] \[bunvmm\] vCPU 0 stopped: the guest triple-faulted/);
    for (const register of ["rip=0x1000e", "rsp=", "cr0=", "efer="]) expect(r.stderr).toContain(register);
    expect(r.stderr).not.toContain("[info]");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
