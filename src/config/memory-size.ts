/**
 * Memory sizes as users write them: "512M", "1GiB", "4096k", or a number of bytes.
 * @module
 */
import { ConfigError, issueAt } from "./config-error.ts";
import { GIB, KIB, MEMORY_SIZE_ALIGN, MEMORY_SIZE_MAX, MEMORY_SIZE_MIN, MIB } from "./limits.ts";

const SIZE_PATTERN = /^(\d+)(k|m|g|kib|mib|gib)?$/i;
const MULTIPLIERS: Readonly<Record<string, number>> = {
  k: KIB,
  m: MIB,
  g: GIB,
  kib: KIB,
  mib: MIB,
  gib: GIB,
};

/** Sizes in messages are said in MiB or GiB, which is how users write them. */
function describeBytes(bytes: number): string {
  return bytes % GIB === 0
    ? `${bytes / GIB} GiB`
    : bytes % MIB === 0
      ? `${bytes / MIB} MiB`
      : `${bytes} bytes`;
}

const MEMORY_SIZE_FORMAT = `a size like "512M", "1G" or a number of bytes`;
const MEMORY_SIZE_MULTIPLE = `a multiple of ${MEMORY_SIZE_ALIGN} bytes`;
const MEMORY_SIZE_RANGE = `a size from ${describeBytes(MEMORY_SIZE_MIN)} to ${describeBytes(MEMORY_SIZE_MAX)}`;

/** Size in bytes, or what was expected instead: the non-throwing core that the schema and parseMemorySize share. */
export function checkMemorySize(value: unknown): { bytes: number } | { expected: string } {
  let bytes: number;
  if (typeof value === "number" && Number.isInteger(value)) {
    bytes = value;
  } else if (typeof value === "string") {
    const match = SIZE_PATTERN.exec(value);
    if (!match) return { expected: MEMORY_SIZE_FORMAT };
    const [, digits = "", suffix = ""] = match;
    bytes = Number(digits) * (MULTIPLIERS[suffix.toLowerCase()] ?? 1);
  } else {
    return { expected: MEMORY_SIZE_FORMAT };
  }
  if (!Number.isSafeInteger(bytes)) return { expected: MEMORY_SIZE_RANGE };
  if (bytes % MEMORY_SIZE_ALIGN !== 0) return { expected: MEMORY_SIZE_MULTIPLE };
  if (bytes < MEMORY_SIZE_MIN || bytes > MEMORY_SIZE_MAX) return { expected: MEMORY_SIZE_RANGE };
  return { bytes };
}

/**
 * Parses a guest memory size ("512M", "1GiB", 536870912) into bytes, with the same rules as `memory.size`,
 * so a CLI flag or an API resize accepts exactly what the config file does.
 * @throws {ConfigError} under `key` (default `memory.size`) when the size is malformed or out of range.
 */
export function parseMemorySize(value: string | number, key = "memory.size"): number {
  const result = checkMemorySize(value);
  if ("expected" in result) throw new ConfigError([issueAt(key, value, result.expected)]);
  return result.bytes;
}
