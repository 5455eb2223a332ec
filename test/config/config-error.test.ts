import { describe, expect, test } from "bun:test";
import { ConfigError, formatKey, formatValue, issueAt } from "../../src/config/config-error.ts";

describe("formatValue", () => {
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  test.each([
    ["a string", "512X", '"512X"'],
    ["zero", 0, "0"],
    ["a boolean", true, "true"],
    ["null", null, "null"],
    ["an array", [1, 2], "[1,2]"],
    ["a table", { a: 1 }, '{"a":1}'],
    ["infinity, TOML style", Infinity, "inf"],
    ["minus infinity", -Infinity, "-inf"],
    ["NaN", NaN, "nan"],
    ["a bigint", 10n, "10"],
    ["undefined", undefined, "undefined"],
    ["a circular object", circular, "[object Object]"],
    ["a long string, cut", "x".repeat(100), `"${"x".repeat(58)}…`],
  ])("formatValue() prints %s as %s", (_name, value, text) => {
    expect(formatValue(value)).toBe(text);
  });
});

describe("formatKey", () => {
  test.each([
    [[], ""],
    [["cpus"], "cpus"],
    [["cpus", "boot_vcpus"], "cpus.boot_vcpus"],
    [["cpus", "a.b"], 'cpus."a.b"'],
    [["serial", "my key"], 'serial."my key"'],
  ] as const)("formatKey(%p) is %p", (segments, key) => {
    expect(formatKey(segments)).toBe(key);
  });
});

describe("issueAt", () => {
  test("issueAt() reads `key = value: expected …`", () => {
    expect(issueAt("cpus.boot_vcpus", 0, "an integer from 1 to 255")).toEqual({
      key: "cpus.boot_vcpus",
      value: 0,
      expected: "an integer from 1 to 255",
      message: "cpus.boot_vcpus = 0: expected an integer from 1 to 255",
    });
  });
  test("issueAt() leaves out a missing value", () => {
    expect(issueAt("serial.file", undefined, "a path").message).toBe("serial.file: expected a path");
  });
  test("issueAt() calls the top level `config`", () => {
    expect(issueAt("", 3, "a table").message).toBe("config = 3: expected a table");
  });
  test("issueAt() lets a problem replace the `expected …` part", () => {
    expect(
      issueAt("payload.kernel", "x.bin", "a readable regular file", "file not found: /x.bin").message,
    ).toBe('payload.kernel = "x.bin": file not found: /x.bin');
  });
});

describe("ConfigError", () => {
  test("ConfigError takes its message and fields from the first issue and keeps them all", () => {
    const first = issueAt("cpus.boot_vcpus", 0, "an integer from 1 to 255");
    const second = issueAt("memory.size", "x", "a size");
    const error = new ConfigError([first, second], "vm.toml");
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("ConfigError");
    expect(error.message).toBe("cpus.boot_vcpus = 0: expected an integer from 1 to 255");
    expect([error.key, error.value, error.expected]).toEqual([
      "cpus.boot_vcpus",
      0,
      "an integer from 1 to 255",
    ]);
    expect(error.issues).toEqual([first, second]);
    expect(error.source).toBe("vm.toml");
  });
});
