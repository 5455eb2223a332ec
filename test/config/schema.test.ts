/**
 * The schema through parseConfig(): defaults, accepted spellings, and the exact message for every kind of
 * schema violation. File checks and TOML files are in load.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig, type VmConfig } from "../../src/config/index.ts";
import { CMDLINE_MAX, GIB, MIB } from "../../src/config/limits.ts";
import { catchConfigError } from "../helpers/catch-config-error.ts";

const DEFAULTS: VmConfig = {
  cpus: { boot_vcpus: 1, max_vcpus: 1, hide_features: [] },
  memory: { size: 512 * MIB, thp: true },
  payload: { cmdline: "", format: "auto" },
  serial: { mode: "tty" },
  api: {},
  disks: [],
  console: { mode: "off" },
  net: [],
  vmm: { lifecycle_timeout_ms: 1000 },
};

const VCPUS = "expected an integer from 1 to 255";
const TABLE = "expected a table";
const PATH = "expected a path";
const SIZE_FORMAT = 'expected a size like "512M", "1G" or a number of bytes';
const CMDLINE = `expected a string of at most ${CMDLINE_MAX} bytes`;
const MODES = 'expected one of "tty", "file", "off"';
const FORMATS = 'expected one of "auto", "bzimage", "elf", "raw"';
const TIMEOUT = "expected an integer number of milliseconds from 10 to 60000";
const TOP_KEYS =
  'one of "cpus", "memory", "payload", "serial", "api", "disks", "rng", "console", "net", "vsock", "vmm"';
/** The key a message is about: what stands before ` = value` or `:` (`config` is the top level, key ""). */
const keyNamedIn = (message: string) => {
  const subject = /^(.*?)(?: = |: )/.exec(message)?.[1] ?? message;
  return subject === "config" ? "" : subject;
};

describe("parseConfig() defaults", () => {
  test("parseConfig({}) gives the defaults, with no keys set to undefined", () => {
    expect(parseConfig({})).toStrictEqual(DEFAULTS);
  });

  const withCpus = (boot_vcpus: number, max_vcpus: number): VmConfig => ({
    ...DEFAULTS,
    cpus: { boot_vcpus, max_vcpus, hide_features: [] },
  });
  test.each<[string, unknown, VmConfig]>([
    ["empty tables", { cpus: {}, memory: {}, payload: {}, serial: {}, api: {}, vmm: {} }, DEFAULTS],
    [
      "the shortest lifecycle timeout",
      { vmm: { lifecycle_timeout_ms: 10 } },
      { ...DEFAULTS, vmm: { lifecycle_timeout_ms: 10 } },
    ],
    [
      "the longest lifecycle timeout",
      { vmm: { lifecycle_timeout_ms: 60_000 } },
      { ...DEFAULTS, vmm: { lifecycle_timeout_ms: 60_000 } },
    ],
    ["boot_vcpus alone, which sets max_vcpus", { cpus: { boot_vcpus: 4 } }, withCpus(4, 4)],
    ["max_vcpus alone, with one boot vCPU", { cpus: { max_vcpus: 8 } }, withCpus(1, 8)],
    ["both vCPU counts", { cpus: { boot_vcpus: 2, max_vcpus: 8 } }, withCpus(2, 8)],
    ["the most vCPUs", { cpus: { boot_vcpus: 255 } }, withCpus(255, 255)],
    [
      "features to hide, once each",
      { cpus: { hide_features: ["cx16", "xsave", "cx16"] } },
      { ...DEFAULTS, cpus: { boot_vcpus: 1, max_vcpus: 1, hide_features: ["cx16", "xsave"] } },
    ],
    ["a memory size string", { memory: { size: "1G" } }, { ...DEFAULTS, memory: { size: GIB, thp: true } }],
    [
      "a memory size in bytes",
      { memory: { size: 64 * MIB } },
      { ...DEFAULTS, memory: { size: 64 * MIB, thp: true } },
    ],
    ["huge pages off", { memory: { thp: false } }, { ...DEFAULTS, memory: { size: 512 * MIB, thp: false } }],
    ["a serial mode in any case", { serial: { mode: "Tty" } }, DEFAULTS],
    ["serial off", { serial: { mode: "OFF" } }, { ...DEFAULTS, serial: { mode: "off" } }],
    [
      "cmdline and format without a kernel",
      { payload: { cmdline: "console=ttyS0", format: "bzimage" } },
      { ...DEFAULTS, payload: { cmdline: "console=ttyS0", format: "bzimage" } },
    ],
    [
      "a cmdline of the longest length",
      { payload: { cmdline: "x".repeat(CMDLINE_MAX) } },
      { ...DEFAULTS, payload: { cmdline: "x".repeat(CMDLINE_MAX), format: "auto" } },
    ],
  ])("parseConfig() accepts %s", (_name, input, expected) => {
    expect(parseConfig(input)).toStrictEqual(expected);
  });

  test.each(["auto", "bzimage", "elf", "raw"] as const)(
    "parseConfig() accepts payload.format = %p",
    (format) => {
      expect(parseConfig({ payload: { format } }).payload.format).toBe(format);
    },
  );
});

describe("parseConfig() errors", () => {
  test.each<[string, unknown, string]>([
    // The whole config is not a table
    ["a number as the config", 3, `config = 3: ${TABLE}`],
    ["null as the config", null, `config = null: ${TABLE}`],
    ["an array as the config", [], `config = []: ${TABLE}`],
    ["a Map as the config", new Map(), `config = {}: ${TABLE}`],
    // A table given as something else
    ["a scalar table", { cpus: 3 }, `cpus = 3: ${TABLE}`],
    ["a string table", { memory: "1G" }, `memory = "1G": ${TABLE}`],
    ["an array of tables", { cpus: [{ boot_vcpus: 2 }] }, `cpus = [{"boot_vcpus":2}]: ${TABLE}`],
    ["a null table", { serial: null }, `serial = null: ${TABLE}`],
    ["a Date as a table", { api: new Date(0) }, `api = "1970-01-01T00:00:00.000Z": ${TABLE}`],
    // Unknown keys, with and without a suggestion
    ["a misspelt table", { cpu: {} }, 'cpu: unknown key (did you mean "cpus"?)'],
    ["a swapped-letter table", { memroy: {} }, 'memroy: unknown key (did you mean "memory"?)'],
    ["an unknown table", { machine: {} }, `machine: unknown key (expected ${TOP_KEYS})`],
    ["a table one letter off", { vm: {} }, 'vm: unknown key (did you mean "vmm"?)'],
    [
      "a misspelt key",
      { cpus: { boot_vcpu: 2 } },
      'cpus.boot_vcpu: unknown key (did you mean "boot_vcpus"?)',
    ],
    [
      "a key in the wrong case",
      { cpus: { Boot_Vcpus: 2 } },
      'cpus.Boot_Vcpus: unknown key (did you mean "boot_vcpus"?)',
    ],
    [
      "an unknown key",
      { cpus: { vcpus: 2 } },
      'cpus.vcpus: unknown key (expected one of "boot_vcpus", "max_vcpus", "hide_features")',
    ],
    [
      "a nested table",
      { cpus: { topology: {} } },
      'cpus.topology: unknown key (expected one of "boot_vcpus", "max_vcpus", "hide_features")',
    ],
    [
      "a quoted key",
      { cpus: { "boot.vcpus": 2 } },
      'cpus."boot.vcpus": unknown key (did you mean "boot_vcpus"?)',
    ],
    ["a misspelt memory key", { memory: { sise: "1G" } }, 'memory.sise: unknown key (did you mean "size"?)'],
    [
      "a misspelt payload key",
      { payload: { kernal: "k" } },
      'payload.kernal: unknown key (did you mean "kernel"?)',
    ],
    [
      "a misspelt serial key",
      { serial: { mdoe: "file" } },
      'serial.mdoe: unknown key (did you mean "mode"?)',
    ],
    ["a misspelt api key", { api: { sock: "s" } }, 'api.sock: unknown key (did you mean "socket"?)'],
    // cpus
    ["zero boot vCPUs", { cpus: { boot_vcpus: 0 } }, `cpus.boot_vcpus = 0: ${VCPUS}`],
    ["too many boot vCPUs", { cpus: { boot_vcpus: 256 } }, `cpus.boot_vcpus = 256: ${VCPUS}`],
    ["fractional boot vCPUs", { cpus: { boot_vcpus: 1.5 } }, `cpus.boot_vcpus = 1.5: ${VCPUS}`],
    ["boot vCPUs as a string", { cpus: { boot_vcpus: "2" } }, `cpus.boot_vcpus = "2": ${VCPUS}`],
    ["boot vCPUs as a boolean", { cpus: { boot_vcpus: true } }, `cpus.boot_vcpus = true: ${VCPUS}`],
    ["infinite boot vCPUs", { cpus: { boot_vcpus: Infinity } }, `cpus.boot_vcpus = inf: ${VCPUS}`],
    ["negative max vCPUs", { cpus: { max_vcpus: -1 } }, `cpus.max_vcpus = -1: ${VCPUS}`],
    ["too many max vCPUs", { cpus: { max_vcpus: 300 } }, `cpus.max_vcpus = 300: ${VCPUS}`],
    [
      "an unknown feature to hide",
      { cpus: { hide_features: ["cx16", "sse9"] } },
      'cpus.hide_features.1 = "sse9": expected a list of CPU feature names, each one of "avx", "avx2", "cx16", "x2apic", "xsave"',
    ],
    [
      "features to hide as a string",
      { cpus: { hide_features: "cx16" } },
      'cpus.hide_features = "cx16": expected a list of CPU feature names, each one of "avx", "avx2", "cx16", "x2apic", "xsave"',
    ],
    [
      "max vCPUs below boot vCPUs",
      { cpus: { boot_vcpus: 2, max_vcpus: 1 } },
      "cpus.max_vcpus = 1: expected an integer from cpus.boot_vcpus (2) to 255 (max_vcpus may not be below boot_vcpus)",
    ],
    // memory
    ["a size with a bad suffix", { memory: { size: "512X" } }, `memory.size = "512X": ${SIZE_FORMAT}`],
    ["a size as a boolean", { memory: { size: true } }, `memory.size = true: ${SIZE_FORMAT}`],
    [
      "a size not in pages",
      { memory: { size: 5000 } },
      "memory.size = 5000: expected a multiple of 4096 bytes",
    ],
    [
      "a size too small",
      { memory: { size: "512K" } },
      'memory.size = "512K": expected a size from 1 MiB to 64 GiB',
    ],
    [
      "a size too large",
      { memory: { size: "100G" } },
      'memory.size = "100G": expected a size from 1 MiB to 64 GiB',
    ],
    ["thp as a string", { memory: { thp: "on" } }, 'memory.thp = "on": expected true or false'],
    // payload
    ["a kernel path as a number", { payload: { kernel: 3 } }, `payload.kernel = 3: ${PATH}`],
    ["an empty kernel path", { payload: { kernel: "" } }, `payload.kernel = "": ${PATH}`],
    ["a kernel path with NUL", { payload: { kernel: "a\0b" } }, `payload.kernel = "a\\u0000b": ${PATH}`],
    [
      "a command line for a raw image",
      { payload: { kernel: "guest.bin", format: "raw", cmdline: "console=ttyS0" } },
      'payload.cmdline = "console=ttyS0": expected no command line with payload.format = "raw" (a raw image reads none)',
    ],
    [
      "an initramfs for a raw image",
      { payload: { kernel: "guest.bin", format: "raw", initramfs: "initrd.img" } },
      'payload.initramfs = "initrd.img": expected no initramfs with payload.format = "raw" (a raw image loads none)',
    ],
    [
      "an initramfs without a kernel",
      { payload: { initramfs: "initrd.img" } },
      'payload.initramfs = "initrd.img": expected a kernel to go with it (payload.kernel)',
    ],
    ["a cmdline as a list", { payload: { cmdline: ["quiet"] } }, `payload.cmdline = ["quiet"]: ${CMDLINE}`],
    [
      "a cmdline one byte too long",
      { payload: { cmdline: "x".repeat(CMDLINE_MAX + 1) } },
      `payload.cmdline = "${"x".repeat(58)}…: ${CMDLINE}`,
    ],
    [
      "a cmdline too long in UTF-8 bytes",
      { payload: { cmdline: "é".repeat(1024) } },
      `payload.cmdline = "${"é".repeat(58)}…: ${CMDLINE}`,
    ],
    [
      "a cmdline with NUL",
      { payload: { cmdline: "quiet\0" } },
      'payload.cmdline = "quiet\\u0000": expected a string without NUL characters',
    ],
    ["an unknown format", { payload: { format: "pe" } }, `payload.format = "pe": ${FORMATS}`],
    ["a format in upper case", { payload: { format: "ELF" } }, `payload.format = "ELF": ${FORMATS}`],
    ["a format as a number", { payload: { format: 1 } }, `payload.format = 1: ${FORMATS}`],
    // serial
    ["an unknown serial mode", { serial: { mode: "pty" } }, `serial.mode = "pty": ${MODES}`],
    ["an unknown serial mode, mixed case", { serial: { mode: "Pty" } }, `serial.mode = "Pty": ${MODES}`],
    ["a serial mode as a boolean", { serial: { mode: false } }, `serial.mode = false: ${MODES}`],
    [
      "file mode without a file",
      { serial: { mode: "file" } },
      'serial.file: expected a path when serial.mode is "file"',
    ],
    [
      "a file with the default mode",
      { serial: { file: "serial.log" } },
      'serial.file = "serial.log": expected serial.mode = "file" to go with it',
    ],
    [
      "a file with mode off",
      { serial: { mode: "off", file: "serial.log" } },
      'serial.file = "serial.log": expected serial.mode = "file" to go with it',
    ],
    ["a serial file as a number", { serial: { mode: "file", file: 1 } }, `serial.file = 1: ${PATH}`],
    // api
    ["a socket as a number", { api: { socket: 3 } }, `api.socket = 3: ${PATH}`],
    ["an empty socket path", { api: { socket: "" } }, `api.socket = "": ${PATH}`],
    // vmm
    [
      "a lifecycle timeout too short",
      { vmm: { lifecycle_timeout_ms: 9 } },
      `vmm.lifecycle_timeout_ms = 9: ${TIMEOUT}`,
    ],
    [
      "a lifecycle timeout too long",
      { vmm: { lifecycle_timeout_ms: 60_001 } },
      `vmm.lifecycle_timeout_ms = 60001: ${TIMEOUT}`,
    ],
    [
      "a fractional lifecycle timeout",
      { vmm: { lifecycle_timeout_ms: 2.5 } },
      `vmm.lifecycle_timeout_ms = 2.5: ${TIMEOUT}`,
    ],
    [
      "a lifecycle timeout as a string",
      { vmm: { lifecycle_timeout_ms: "1s" } },
      `vmm.lifecycle_timeout_ms = "1s": ${TIMEOUT}`,
    ],
    [
      "a negative lifecycle timeout",
      { vmm: { lifecycle_timeout_ms: -1 } },
      `vmm.lifecycle_timeout_ms = -1: ${TIMEOUT}`,
    ],
    [
      "a misspelt vmm key",
      { vmm: { lifecycle_timeout: 100 } },
      'vmm.lifecycle_timeout: unknown key (did you mean "lifecycle_timeout_ms"?)',
    ],
  ])("parseConfig() rejects %s", (_name, input, message) => {
    const error = catchConfigError(() => parseConfig(input));
    expect(error.message).toBe(message);
    expect(error.key).toBe(keyNamedIn(message));
  });

  test("parseConfig() keeps the value and what was expected as fields", () => {
    const error = catchConfigError(() => parseConfig({ cpus: { boot_vcpus: "2" } }));
    expect(error.value).toBe("2");
    expect(error.expected).toBe("an integer from 1 to 255");
    expect(error.issues).toHaveLength(1);
  });

  test("parseConfig() gives the list of keys as `expected` for an unknown key", () => {
    const error = catchConfigError(() => parseConfig({ cpus: { boot_vcpu: 2 } }));
    expect(error.value).toBe(2);
    expect(error.expected).toBe('one of "boot_vcpus", "max_vcpus", "hide_features"');
  });

  test("parseConfig() reports the first problem and lists all of them in `issues`", () => {
    const input = { cpus: { boot_vcpus: 0 }, memory: { size: "x" }, serial: { mode: "pty" } };
    const error = catchConfigError(() => parseConfig(input));
    expect(error.message).toBe(`cpus.boot_vcpus = 0: ${VCPUS}`);
    expect(error.issues.map((issue) => issue.key)).toEqual(["cpus.boot_vcpus", "memory.size", "serial.mode"]);
  });

  test("parseConfig() reports an unknown key before the complaints it may have caused", () => {
    const error = catchConfigError(() => parseConfig({ cpus: { boot_vcpus: 0 }, serail: { mode: "file" } }));
    expect(error.message).toBe('serail: unknown key (did you mean "serial"?)');
    expect(error.issues.map((issue) => issue.key)).toEqual(["serail", "cpus.boot_vcpus"]);
  });

  test("parseConfig() complains once per key", () => {
    // 0.5 is both fractional and below the minimum; the user needs to hear it once.
    expect(catchConfigError(() => parseConfig({ cpus: { boot_vcpus: 0.5 } })).issues).toHaveLength(1);
  });

  test("parseConfig() rejects disks that are not an array of tables, a bad disk key, a long serial, twin ids", () => {
    expect(catchConfigError(() => parseConfig({ disks: { path: "/a" } })).message).toBe(
      'disks = {"path":"/a"}: expected an array of tables ([[disks]])',
    );
    expect(catchConfigError(() => parseConfig({ disks: [{ path: "/a", redonly: true }] })).message).toBe(
      'disks.0.redonly: unknown key (did you mean "readonly"?)',
    );
    expect(
      catchConfigError(() => parseConfig({ disks: [{ path: "/a", serial: "x".repeat(21) }] })).message,
    ).toBe(`disks.0.serial = "${"x".repeat(21)}": expected a string of at most 20 bytes`);
    expect(
      catchConfigError(() => parseConfig({ disks: [{ path: "/a" }, { path: "/b", id: "disk0" }] })).key,
    ).toBe("disks");
  });

  test("parseConfig() fills in [[net]]: ids, a random locally administered MAC, the default mask with ip", () => {
    const c = parseConfig({
      net: [{ ip: "192.0.2.1" }, { tap: "tap0", mac: "02:AA:00:00:00:01", mtu: 9000 }],
    });
    expect(c.net[0]!.id).toBe("net0");
    expect(c.net[0]!.mask).toBe("255.255.255.0");
    // Locally administered (bit 1 of the first byte) and unicast (bit 0 clear).
    expect(Number.parseInt(c.net[0]!.mac.slice(0, 2), 16) & 0b11).toBe(0b10);
    expect(c.net[0]!.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect(c.net[1]).toEqual({ tap: "tap0", mac: "02:aa:00:00:00:01", mtu: 9000, id: "net1" });
    expect(parseConfig({ vsock: { cid: 3, socket: "/v.sock" } }).vsock).toEqual({
      cid: 3,
      socket: "/v.sock",
      id: "vsock0",
    });
  });

  test("parseConfig() rejects a bad MAC, a mask without ip, a bad tap name, an MTU or CID out of range, twin ids", () => {
    const message = (input: unknown) => catchConfigError(() => parseConfig(input)).message;
    expect(message({ net: [{ mac: "01:00:00:00:00:01" }] })).toBe(
      'net.0.mac = "01:00:00:00:00:01": expected a unicast MAC address like 02:00:00:00:00:01 (six hex bytes, first byte even, not all zero)',
    );
    expect(message({ net: [{ host_mac: "02:00:00:00:00" }] })).toContain('net.0.host_mac = "02:00:00:00:00"');
    expect(message({ net: [{ mask: "255.255.255.0" }] })).toBe(
      'net.0.mask = "255.255.255.0": expected an ip to go with it (net[].ip)',
    );
    expect(message({ net: [{ ip: "192.0.2.1", mask: "255.0.255.0" }] })).toBe(
      'net.0.mask = "255.0.255.0": expected an IPv4 netmask like 255.255.255.0 (contiguous ones)',
    );
    expect(message({ net: [{ tap: "a-name-longer-than-15" }] })).toBe(
      'net.0.tap = "a-name-longer-than-15": expected an interface name of 1-15 bytes without /, : or spaces',
    );
    expect(message({ net: [{ mtu: 67 }] })).toBe("net.0.mtu = 67: expected an integer from 68 to 65535");
    expect(message({ vsock: { cid: 2, socket: "/v" } })).toBe(
      "vsock.cid = 2: expected an integer from 3 to 4294967294",
    );
    expect(message({ vsock: { cid: 3 } })).toContain("vsock.socket");
    expect(message({ disks: [{ path: "/a", id: "x" }], net: [{ id: "x" }] })).toContain(
      "distinct device ids across disks, net and vsock",
    );
  });

  test('parseConfig() wants a file with console.mode = "file" and only then', () => {
    expect(catchConfigError(() => parseConfig({ console: { mode: "file" } })).message).toBe(
      'console.file: expected a path when console.mode is "file"',
    );
    expect(catchConfigError(() => parseConfig({ console: { mode: "tty", file: "/x" } })).message).toBe(
      'console.file = "/x": expected console.mode = "file" to go with it',
    );
    expect(catchConfigError(() => parseConfig({ console: { mode: "pipe" } })).message).toBe(
      'console.mode = "pipe": expected one of "off", "tty", "file"',
    );
  });

  test("parseConfig() keeps the source on the error", () => {
    expect(catchConfigError(() => parseConfig({ cpus: 3 }, { source: "vm.toml" })).source).toBe("vm.toml");
  });
});
