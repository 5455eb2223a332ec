/**
 * parseConfig()'s file checks and loadConfigFile(), against real files in a temporary directory.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { loadConfigFile, parseConfig } from "../../src/config/index.ts";
import { MIB } from "../../src/config/limits.ts";
import { nobodyScript, runAsNobody } from "../helpers/as-nobody.ts";
import { catchConfigError, rejectedConfigError } from "../helpers/catch-config-error.ts";

let dir = "";
const at = (...parts: string[]) => join(dir, ...parts);
/** Runs `script` (it may use `config`, the src/config module) as nobody: root may read any file. */
function asNobody(script: string): string {
  const config = join(import.meta.dir, "..", "..", "src", "config", "index.ts");
  const file = nobodyScript(
    "config-check",
    `import * as config from ${JSON.stringify(config)};\n${script}\n`,
  );
  const r = runAsNobody(file);
  if (r.exitCode !== 0) throw new Error(`the unprivileged check failed: ${r.stderr}`);
  return r.stdout.trim();
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "bunvmm-config-"));
  chmodSync(dir, 0o755); // so the unprivileged checks can reach the files in it
  mkdirSync(at("boot"));
  mkdirSync(at("logs"));
  mkdirSync(at("vms", "a"), { recursive: true });
  writeFileSync(at("boot", "bzImage"), "kernel");
  writeFileSync(at("boot", "initrd.img"), "initramfs");
  writeFileSync(at("vms", "a", "guest.bin"), "raw");
  writeFileSync(at("plain-file"), "");
  writeFileSync(at("unreadable"), "");
  chmodSync(at("unreadable"), 0o000);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("parseConfig() file paths", () => {
  test("parseConfig() makes relative paths absolute against baseDir", () => {
    const config = parseConfig(
      {
        payload: { kernel: "boot/bzImage", initramfs: "./boot/initrd.img" },
        serial: { mode: "file", file: "logs/serial.log" },
        api: { socket: "api.sock" },
      },
      { baseDir: dir },
    );
    expect(config.payload).toStrictEqual({
      kernel: at("boot", "bzImage"),
      initramfs: at("boot", "initrd.img"),
      cmdline: "",
      format: "auto",
    });
    expect(config.serial).toStrictEqual({ mode: "file", file: at("logs", "serial.log") });
    expect(config.api).toStrictEqual({ socket: at("api.sock") });
  });

  test("parseConfig() keeps absolute paths", () => {
    const kernel = at("boot", "bzImage");
    expect(parseConfig({ payload: { kernel } }, { baseDir: "/nonexistent" }).payload.kernel).toBe(kernel);
  });

  test("parseConfig() takes relative paths from process.cwd() by default", () => {
    const kernel = relative(process.cwd(), at("boot", "bzImage"));
    expect(parseConfig({ payload: { kernel } }).payload.kernel).toBe(at("boot", "bzImage"));
  });

  test("parseConfig() accepts its own output unchanged, so a VmConfig can be passed back in", () => {
    const input = {
      payload: { kernel: "boot/bzImage" },
      serial: { mode: "File", file: "logs/x.log" },
      memory: { size: "1G" },
    };
    const config = parseConfig(input, { baseDir: dir });
    expect(parseConfig(config, { baseDir: "/" })).toStrictEqual(config);
  });

  test("parseConfig() does not create the serial file", () => {
    parseConfig({ serial: { mode: "file", file: "logs/new.log" } }, { baseDir: dir });
    expect(existsSync(at("logs", "new.log"))).toBe(false);
  });

  test("parseConfig() accepts an existing serial file", () => {
    writeFileSync(at("logs", "old.log"), "");
    const config = parseConfig({ serial: { mode: "file", file: "logs/old.log" } }, { baseDir: dir });
    expect(config.serial.file).toBe(at("logs", "old.log"));
  });

  test.each([
    {
      name: "a missing kernel",
      input: { payload: { kernel: "x.bin" } },
      key: "payload.kernel",
      message: () => `payload.kernel = "x.bin": file not found: ${at("x.bin")}`,
    },
    {
      name: "a kernel under a file",
      input: { payload: { kernel: "plain-file/x.bin" } },
      key: "payload.kernel",
      message: () => `payload.kernel = "plain-file/x.bin": file not found: ${at("plain-file", "x.bin")}`,
    },
    {
      name: "a kernel that is a directory",
      input: { payload: { kernel: "boot" } },
      key: "payload.kernel",
      message: () => `payload.kernel = "boot": not a regular file: ${at("boot")}`,
    },
    {
      name: "a missing initramfs",
      input: { payload: { kernel: "boot/bzImage", initramfs: "boot/initrd" } },
      key: "payload.initramfs",
      message: () => `payload.initramfs = "boot/initrd": file not found: ${at("boot", "initrd")}`,
    },
    {
      name: "a serial file in a missing directory",
      input: { serial: { mode: "file", file: "nolog/serial.log" } },
      key: "serial.file",
      message: () => `serial.file = "nolog/serial.log": directory not found: ${at("nolog")}`,
    },
    {
      name: "a serial file under a file",
      input: { serial: { mode: "file", file: "plain-file/serial.log" } },
      key: "serial.file",
      message: () => `serial.file = "plain-file/serial.log": not a directory: ${at("plain-file")}`,
    },
    {
      name: "a serial file that is a directory",
      input: { serial: { mode: "file", file: "logs" } },
      key: "serial.file",
      message: () => `serial.file = "logs": is a directory: ${at("logs")}`,
    },
    {
      name: "a socket in a missing directory",
      input: { api: { socket: "run/api.sock" } },
      key: "api.socket",
      message: () => `api.socket = "run/api.sock": directory not found: ${at("run")}`,
    },
    {
      name: "a socket path too long for sun_path",
      input: { api: { socket: `${"s".repeat(120)}.sock` } },
      key: "api.socket",
      message: () => {
        const abs = at(`${"s".repeat(120)}.sock`);
        const length = Buffer.byteLength(abs);
        return `api.socket = "${"s".repeat(58)}…: too long for a Unix socket (${length} bytes, at most 107): ${abs}`;
      },
    },
  ])("parseConfig() rejects $name", ({ input, key, message }) => {
    const error = catchConfigError(() => parseConfig(input, { baseDir: dir }));
    expect(error.message).toBe(message());
    expect(error.key).toBe(key);
  });

  test("parseConfig() rejects a kernel it may not read (checked as an unprivileged user)", () => {
    const message = asNobody(
      `try { config.parseConfig({ payload: { kernel: "unreadable" } }, { baseDir: ${JSON.stringify(dir)} }); console.log("accepted"); } catch (e) { console.log(e.message); }`,
    );
    expect(message).toBe(`payload.kernel = "unreadable": permission denied: ${at("unreadable")}`);
  });

  test("parseConfig() rejects a disk image it may not read or write (checked as an unprivileged user)", () => {
    const message = asNobody(
      `try { config.parseConfig({ disks: [{ path: "plain-file" }, { path: "unreadable", readonly: true }] }, { baseDir: ${JSON.stringify(dir)} }); console.log("accepted"); } catch (e) { console.log(e.issues.map((i) => i.message).join("\\n")); }`,
    );
    expect(message.split("\n")).toEqual([
      `disks.0.path = "plain-file": permission denied: ${at("plain-file")}`,
      `disks.1.path = "unreadable": permission denied: ${at("unreadable")}`,
    ]);
  });

  test("parseConfig() resolves disk, rng and console paths and fills the defaults", () => {
    const config = parseConfig(
      {
        disks: [{ path: "boot/bzImage" }, { path: "boot/initrd.img", readonly: true, serial: "s", id: "b" }],
        rng: {},
        console: { mode: "File", file: "logs/hvc0.log" },
      },
      { baseDir: dir },
    );
    expect(config.disks).toStrictEqual([
      { path: at("boot", "bzImage"), readonly: false, direct: false, id: "disk0" },
      { path: at("boot", "initrd.img"), readonly: true, direct: false, serial: "s", id: "b" },
    ]);
    expect(config.rng).toStrictEqual({ src: "/dev/urandom" });
    expect(config.console).toStrictEqual({ mode: "file", file: at("logs", "hvc0.log") });
  });

  test("parseConfig() rejects a missing disk image and a directory as one", () => {
    const error = catchConfigError(() =>
      parseConfig({ disks: [{ path: "nope.img" }, { path: "boot" }] }, { baseDir: dir }),
    );
    expect(error.issues.map((i) => i.message)).toEqual([
      `disks.0.path = "nope.img": file not found: ${at("nope.img")}`,
      `disks.1.path = "boot": not a regular file or block device: ${at("boot")}`,
    ]);
  });

  test("parseConfig() lists every unusable path", () => {
    const input = { payload: { kernel: "k", initramfs: "i" }, api: { socket: "run/s" } };
    const error = catchConfigError(() => parseConfig(input, { baseDir: dir, source: "vm.toml" }));
    expect(error.issues.map((issue) => issue.key)).toEqual([
      "payload.kernel",
      "payload.initramfs",
      "api.socket",
    ]);
    expect(error.expected).toBe("a readable regular file");
    expect(error.value).toBe("k");
    expect(error.source).toBe("vm.toml");
  });
});

describe("loadConfigFile", () => {
  const write = (name: string, text: string) => {
    writeFileSync(at(name), text);
    return at(name);
  };

  test("loadConfigFile() reads a full config, taking paths from the file's directory", async () => {
    const path = at("vms", "a", "vm.toml");
    writeFileSync(
      path,
      [
        "# a raw test guest",
        "[cpus]",
        "boot_vcpus = 2",
        "max_vcpus = 4",
        "",
        "[memory]",
        'size = "64M"',
        "",
        "[payload]",
        'kernel = "guest.bin"',
        'format = "raw"',
        "",
        "[serial]",
        'mode = "File"',
        'file = "../../logs/a.log"',
        "",
        "[api]",
        'socket = "/tmp/bunvmm-a.sock"',
      ].join("\n"),
    );
    expect(await loadConfigFile(path)).toStrictEqual({
      cpus: { boot_vcpus: 2, max_vcpus: 4, hide_features: [] },
      memory: { size: 64 * MIB, thp: true },
      payload: { kernel: at("vms", "a", "guest.bin"), cmdline: "", format: "raw" },
      serial: { mode: "file", file: at("logs", "a.log") },
      api: { socket: "/tmp/bunvmm-a.sock" },
      disks: [],
      console: { mode: "off" },
      net: [],
      vmm: { lifecycle_timeout_ms: 1000 },
    });
  });

  test("loadConfigFile() takes a path relative to the working directory", async () => {
    const path = write("inline.toml", "cpus = { boot_vcpus = 3 }\nmemory.size = 1073741824\n");
    const config = await loadConfigFile(relative(process.cwd(), path));
    expect(config.cpus).toEqual({ boot_vcpus: 3, max_vcpus: 3, hide_features: [] });
    expect(config.memory.size).toBe(1024 * MIB);
  });

  test("loadConfigFile() gives the defaults for an empty file", async () => {
    expect((await loadConfigFile(write("empty.toml", ""))).memory.size).toBe(512 * MIB);
  });

  test("loadConfigFile() names the file on a validation error", async () => {
    const path = write("bad.toml", "[cpus]\nboot_vcpus = 0\n");
    const error = await rejectedConfigError(loadConfigFile(path));
    expect(error.message).toBe("cpus.boot_vcpus = 0: expected an integer from 1 to 255");
    expect(error.source).toBe(path);
  });

  const VCPUS = "expected an integer from 1 to 255";
  test.each([
    ["an array of tables", "[[cpus]]\nboot_vcpus = 2\n", 'cpus = [{"boot_vcpus":2}]: expected a table'],
    [
      "a datetime",
      "[cpus]\nboot_vcpus = 1979-05-27T07:32:00Z\n",
      `cpus.boot_vcpus = "1979-05-27T07:32:00Z": ${VCPUS}`,
    ],
    ["a float", "[cpus]\nboot_vcpus = 2.5\n", `cpus.boot_vcpus = 2.5: ${VCPUS}`],
    [
      "inf",
      "[memory]\nsize = inf\n",
      'memory.size = inf: expected a size like "512M", "1G" or a number of bytes',
    ],
    ["a misspelt key", "[serial]\nmdoe = 'off'\n", 'serial.mdoe: unknown key (did you mean "mode"?)'],
    ["a dotted key", "cpus.boot_vcpus.x = 1\n", `cpus.boot_vcpus = {"x":1}: ${VCPUS}`],
  ] as const)("loadConfigFile() rejects %s", async (_name, toml, message) => {
    const error = await rejectedConfigError(loadConfigFile(write("case.toml", toml)));
    expect(error.message).toBe(message);
  });

  test.each([
    [
      "a missing value",
      "[cpus]\nboot_vcpus = 2\nmax_vcpus =\n",
      "Missing value after '='; values must be on the same line (line 3)",
    ],
    ["a missing value at the end", "[cpus]\nboot_vcpus =", "Missing value after '=' (line 2)"],
    [
      "a table defined twice",
      "[cpus]\nboot_vcpus = 2\n\n[memory]\n\n[cpus]\nmax_vcpus = 4\n",
      "Cannot redefine table 'cpus' (line 6)",
    ],
    [
      "an unterminated string",
      '[payload]\ncmdline = "quiet\n',
      "Unterminated string; newlines must be escaped in basic strings (line 2)",
    ],
  ] as const)(
    "loadConfigFile() reports %s as a TOML syntax error with its line",
    async (_name, toml, detail) => {
      const path = write("syntax.toml", toml);
      const error = await rejectedConfigError(loadConfigFile(path));
      expect(error.message).toBe(`${path}: TOML syntax error: ${detail}`);
      expect(error.key).toBe("");
      expect(error.source).toBe(path);
    },
  );

  test("loadConfigFile() reports a missing file with its absolute path", async () => {
    const path = relative(process.cwd(), at("missing.toml"));
    const error = await rejectedConfigError(loadConfigFile(path));
    expect(error.message).toBe(`config file not found: ${at("missing.toml")}`);
    expect(error.key).toBe("");
    expect(error.value).toBe(at("missing.toml"));
  });

  test("loadConfigFile() reports a directory", async () => {
    const error = await rejectedConfigError(loadConfigFile(at("boot")));
    expect(error.message).toBe(`config file is not a regular file: ${at("boot")}`);
  });

  test("loadConfigFile() reports a file it may not read (checked as an unprivileged user)", () => {
    const message = asNobody(
      `await config.loadConfigFile(${JSON.stringify(at("unreadable"))}).then(() => console.log("accepted"), (e) => console.log(e.message));`,
    );
    expect(message).toBe(`config file not readable (permission denied): ${at("unreadable")}`);
  });
});
