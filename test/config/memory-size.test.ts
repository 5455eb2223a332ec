import { describe, expect, test } from "bun:test";
import { GIB, KIB, MIB } from "../../src/config/limits.ts";
import { parseMemorySize } from "../../src/config/memory-size.ts";
import { catchConfigError } from "../helpers/catch-config-error.ts";

const FORMAT = 'expected a size like "512M", "1G" or a number of bytes';
const MULTIPLE = "expected a multiple of 4096 bytes";
const RANGE = "expected a size from 1 MiB to 64 GiB";

describe("parseMemorySize", () => {
  test.each([
    ["512M", 512 * MIB],
    ["512m", 512 * MIB],
    ["512MiB", 512 * MIB],
    ["512mib", 512 * MIB],
    ["1G", GIB],
    ["1g", GIB],
    ["1GiB", GIB],
    ["4096K", 4096 * KIB],
    ["4096kib", 4096 * KIB],
    ["1048576", MIB], // a number of bytes, as a string
    [1048576, MIB],
    ["1M", MIB], // the minimum
    ["64G", 64 * GIB], // the maximum
    [64 * GIB, 64 * GIB],
  ] as const)("parseMemorySize(%p) is %p bytes", (value, bytes) => {
    expect(parseMemorySize(value)).toBe(bytes);
  });

  test.each([
    // Not a size at all
    ["512X", `memory.size = "512X": ${FORMAT}`],
    ["512 M", `memory.size = "512 M": ${FORMAT}`],
    ["1.5G", `memory.size = "1.5G": ${FORMAT}`],
    ["512MB", `memory.size = "512MB": ${FORMAT}`],
    ["", `memory.size = "": ${FORMAT}`],
    ["-1M", `memory.size = "-1M": ${FORMAT}`],
    [1.5, `memory.size = 1.5: ${FORMAT}`],
    [NaN, `memory.size = nan: ${FORMAT}`],
    // Not whole pages
    [5000, `memory.size = 5000: ${MULTIPLE}`],
    ["5000", `memory.size = "5000": ${MULTIPLE}`],
    ["1025K", `memory.size = "1025K": ${MULTIPLE}`],
    [-1, `memory.size = -1: ${MULTIPLE}`],
    // Out of range
    [0, `memory.size = 0: ${RANGE}`],
    [4096, `memory.size = 4096: ${RANGE}`],
    ["512K", `memory.size = "512K": ${RANGE}`],
    ["65G", `memory.size = "65G": ${RANGE}`],
    [-4096, `memory.size = -4096: ${RANGE}`],
    ["99999999999999999999G", `memory.size = "99999999999999999999G": ${RANGE}`],
    [Infinity, `memory.size = inf: ${FORMAT}`],
  ] as const)("parseMemorySize(%p) throws %p", (value, message) => {
    const error = catchConfigError(() => parseMemorySize(value));
    expect(error.message).toBe(message);
    expect(error.key).toBe("memory.size");
    expect(error.value).toBe(value);
  });

  test("parseMemorySize() names the key it is given, for flags and API calls", () => {
    const error = catchConfigError(() => parseMemorySize("lots", "--memory"));
    expect(error.message).toBe(`--memory = "lots": ${FORMAT}`);
    expect(error.expected).toBe('a size like "512M", "1G" or a number of bytes');
  });
});
