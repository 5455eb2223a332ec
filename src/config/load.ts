/**
 * Loading a VM config: from a TOML file (`loadConfigFile`) or from a plain object a library user built
 * (`parseConfig`). Both give the same validated, defaulted VmConfig or throw one ConfigError.
 * @module
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import * as v from "valibot";
import { resolveFiles } from "./_files.ts";
import { configErrorFromIssues } from "./_issues.ts";
import { tomlErrorLine } from "./_toml-error-line.ts";
import { ConfigError } from "./config-error.ts";
import { type VmConfig, VmConfigSchema } from "./schema.ts";

export { parseMemorySize } from "./memory-size.ts";

/** Where a config came from, so relative paths and error messages refer to the right place. */
export interface ParseConfigOptions {
  /** Directory that relative file paths are taken from; default `process.cwd()`. */
  baseDir?: string;
  /** The config file's name, kept on a ConfigError as `source`. */
  source?: string;
}

/**
 * Validates a config given as a plain object (parsed TOML, or built by a library user), applies the defaults,
 * makes file paths absolute and checks that the payload files can be read, so the VMM starts only with a
 * config it can use.
 * @throws {ConfigError} naming the first bad key (all of them in `issues`).
 */
export function parseConfig(input: unknown, options: ParseConfigOptions = {}): VmConfig {
  // abortPipeEarly: one complaint per key; a second one about the same value would only repeat it.
  const result = v.safeParse(VmConfigSchema, input, { abortPipeEarly: true });
  if (!result.success) throw configErrorFromIssues(result.issues, options.source);
  return resolveFiles(result.output, options.baseDir ?? process.cwd(), options.source);
}

/** The words for why a config file could not be read: the user fixes the path, not the contents. */
function unreadableFileError(path: string, abs: string, error: unknown): ConfigError {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  const message =
    code === "ENOENT" || code === "ENOTDIR"
      ? `config file not found: ${abs}`
      : code === "EISDIR"
        ? `config file is not a regular file: ${abs}`
        : code === "EACCES" || code === "EPERM"
          ? `config file not readable (permission denied): ${abs}`
          : `config file not readable: ${abs}: ${error instanceof Error ? error.message : String(error)}`;
  return new ConfigError([{ key: "", value: abs, expected: "a readable TOML file", message }], path);
}

/** A TOML syntax error as `vm.toml: TOML syntax error: <Bun's message> (line N)`. */
function syntaxError(path: string, text: string, error: unknown): ConfigError {
  const raw = error instanceof Error ? error.message : String(error);
  const line = tomlErrorLine(text, raw);
  const detail = raw.replace(/^TOML Parse error: /, "") + (line === undefined ? "" : ` (line ${line})`);
  const message = `${path}: TOML syntax error: ${detail}`;
  return new ConfigError([{ key: "", value: undefined, expected: "valid TOML", message }], path);
}

/**
 * Reads a VM's TOML config file; relative paths inside it are taken from the file's own directory, so a
 * config and its kernel can move together.
 * @throws {ConfigError} when the file is missing or unreadable, is not valid TOML, or fails validation.
 */
export async function loadConfigFile(path: string): Promise<VmConfig> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, "utf8");
  } catch (error) {
    throw unreadableFileError(path, abs, error);
  }
  let input: unknown;
  try {
    input = Bun.TOML.parse(text);
  } catch (error) {
    throw syntaxError(path, text, error);
  }
  return parseConfig(input, { baseDir: dirname(abs), source: path });
}
