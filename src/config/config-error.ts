/**
 * The one error class of the config layer: a user mistake in a VM config, told in one line they can act on.
 * @module
 */

import { BunvmmError } from "../errors.ts";

/** Values longer than this are cut in messages, so one bad key cannot flood the terminal. */
const VALUE_PREVIEW_MAX = 60;

/** One problem in a config, as data, so the CLI and the REST API can report it their own way. */
export interface ConfigIssue {
  /** Dotted key such as `cpus.boot_vcpus`; "" for the config (or config file) as a whole. */
  readonly key: string;
  /** The value given (undefined when the key is missing). */
  readonly value: unknown;
  /** What would have been accepted, e.g. `an integer from 1 to 255`. */
  readonly expected: string;
  /** The whole one-line message, e.g. `cpus.boot_vcpus = 0: expected an integer from 1 to 255`. */
  readonly message: string;
}

/** Prints a value as the user would write it: JSON (`"512X"`, `0`, `true`), TOML's `inf`/`nan`, cut when long. */
export function formatValue(value: unknown): string {
  let text: string;
  if (typeof value === "number" && !Number.isFinite(value)) {
    text = Number.isNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
  } else if (typeof value === "bigint") {
    text = value.toString();
  } else {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch {
      json = undefined; // circular, or a BigInt inside
    }
    const isObject = typeof value === "object" || typeof value === "function";
    text = json ?? (isObject ? Object.prototype.toString.call(value) : String(value));
  }
  return text.length > VALUE_PREVIEW_MAX ? `${text.slice(0, VALUE_PREVIEW_MAX - 1)}…` : text;
}

/** Joins key segments the way TOML would accept them back: bare where possible, quoted otherwise (`cpus."a.b"`). */
export function formatKey(segments: readonly string[]): string {
  return segments.map((s) => (/^[A-Za-z0-9_-]+$/.test(s) ? s : JSON.stringify(s))).join(".");
}

/**
 * Builds the issue for a key, reading `key = value: expected …` (or `key: …` when the value is missing),
 * so every complaint about a value has the same shape. `problem` replaces the `expected …` part.
 */
export function issueAt(
  key: string,
  value: unknown,
  expected: string,
  problem = `expected ${expected}`,
): ConfigIssue {
  const subject = key === "" ? "config" : key;
  const shown = value === undefined ? subject : `${subject} = ${formatValue(value)}`;
  return { key, value, expected, message: `${shown}: ${problem}` };
}

/**
 * A mistake in a VM config: `cpus.boot_vcpus = 0: expected an integer from 1 to 255`.
 * The first issue gives the message and the `key`/`value`/`expected` fields; `issues` lists every one found.
 * `source` names the config file, for a CLI that wants to prefix it.
 */
export class ConfigError extends BunvmmError {
  override readonly name = "ConfigError";
  readonly key: string;
  readonly value: unknown;
  readonly expected: string;
  constructor(
    readonly issues: readonly [ConfigIssue, ...ConfigIssue[]],
    readonly source?: string,
  ) {
    const [first] = issues;
    super("input", first.message);
    this.key = first.key;
    this.value = first.value;
    this.expected = first.expected;
  }
}
