/**
 * Checks a command line against a command's citty arguments before citty parses it, because citty
 * takes anything: an unknown flag (`--api-sock`) or a second config file would be silently ignored.
 * Each mistake is one line, with a did-you-mean as unknown config keys get. Also: colour only for a
 * terminal that wants it.
 *
 * Threads: VMM thread (Bun's main thread), before anything else runs.
 * @module
 */
import type { ArgDef, ArgsDef } from "citty";
import { didYouMean } from "../config/_did-you-mean.ts";
import { BunvmmError } from "../errors.ts";

/** A command line citty would misread: one line saying what and, when it can, what was meant. */
export class UsageError extends BunvmmError {
  override name = "UsageError";
  constructor(message: string) {
    super("input", message);
  }
}

/** Flags every command takes besides its own (handled before citty runs). */
const HELP_FLAGS = ["--help", "-h"];

function takesValue(def: ArgDef): boolean {
  return def.type === "string" || def.type === "enum";
}

/** "--api-socket" and its aliases ("-s") for every flag of `args`. */
function flagNames(args: ArgsDef): Map<string, [string, ArgDef]> {
  const names = new Map<string, [string, ArgDef]>();
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    names.set(`--${name}`, [name, def]);
    const alias = "alias" in def ? def.alias : undefined;
    const aliases = alias === undefined ? [] : Array.isArray(alias) ? alias : [alias];
    for (const alias of aliases) names.set(alias.length === 1 ? `-${alias}` : `--${alias}`, [name, def]);
  }
  return names;
}

/** A word that is an argument, not a flag ("-" is stdin by convention, "-3" a number). */
function isPositional(word: string): boolean {
  return !word.startsWith("-") || word === "-" || /^-[0-9]/.test(word);
}

/**
 * @param command how the user calls it, for messages ("bunvmm run")
 * @param argv the words after the command's name
 * @throws {UsageError} an unknown flag, a flag without its value, an enum value not offered, or more
 *   arguments than the command takes.
 */
export function checkArgv(command: string, args: ArgsDef, argv: readonly string[]): void {
  const flags = flagNames(args);
  const positionalDefs = Object.entries(args).filter(([, def]) => def.type === "positional");
  const positionals = positionalDefs.map(([name]) => name.toUpperCase());
  // citty's rule: a positional is required unless it says `required: false` or has a default.
  const required = positionalDefs.filter(([, def]) => def.required !== false && def.default === undefined);
  const given: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--") {
      given.push(...argv.slice(i + 1));
      break;
    }
    if (isPositional(word)) {
      given.push(word);
      continue;
    }
    if (HELP_FLAGS.includes(word)) continue;
    const eq = word.indexOf("=");
    const flag = eq < 0 ? word : word.slice(0, eq);
    const known = flags.get(flag) ?? negated(flags, flag);
    if (!known) throw unknownFlag(command, flag, [...flags.keys()]);
    const [name, def] = known;
    seen.add(name);
    if (!takesValue(def)) continue;
    let value = eq < 0 ? undefined : word.slice(eq + 1);
    if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith("--") && next.length > 2))
        throw new UsageError(
          `${command}: ${flag} needs a value${def.valueHint ? ` (${def.valueHint})` : ""}`,
        );
      value = next;
      i++;
    }
    if (def.type === "enum" && def.options && !def.options.includes(value)) {
      const options = def.options.map(String);
      const guess = didYouMean(value, options);
      throw new UsageError(
        `${command}: --${name} ${JSON.stringify(value)}: expected one of ${options.join(", ")}` +
          (guess ? ` (did you mean ${JSON.stringify(guess)}?)` : ""),
      );
    }
  }
  if (given.length > positionals.length) {
    const extra = given[positionals.length]!;
    const takes =
      positionals.length === 0
        ? "takes no arguments"
        : `takes at most ${positionals.length} argument${positionals.length === 1 ? "" : "s"} (${positionals.join(" ")})`;
    throw new UsageError(`${command}: unexpected argument ${JSON.stringify(extra)}; ${command} ${takes}`);
  }
  const missing = required.slice(given.length).map(([name]) => name.toUpperCase());
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional" || !def.required || def.default !== undefined || seen.has(name)) continue;
    missing.push(`--${name}${def.valueHint ? ` ${def.valueHint}` : ""}`);
  }
  if (missing.length > 0)
    throw new UsageError(`${command}: missing ${missing.join(", ")} (${command} --help)`);
}

/** `--no-foo` for a boolean `--foo` (citty negates booleans that way). */
function negated(flags: Map<string, [string, ArgDef]>, flag: string): [string, ArgDef] | undefined {
  if (!flag.startsWith("--no-")) return undefined;
  const base = flags.get(`--${flag.slice("--no-".length)}`);
  return base?.[1].type === "boolean" ? base : undefined;
}

function unknownFlag(command: string, flag: string, known: string[]): UsageError {
  const long = known.filter((k) => k.startsWith("--"));
  const guess = didYouMean(
    flag.replace(/^-+/, ""),
    long.map((k) => k.slice(2)),
  );
  const hint = guess ? ` (did you mean --${guess}?)` : `; it takes ${[...long, "--help"].join(", ")}`;
  return new UsageError(`${command}: unknown option ${flag}${hint}`);
}

/** Colour for `stream` only when it is a terminal and NO_COLOR (https://no-color.org) is unset or empty. */
export function wantsColour(stream: { isTTY?: boolean }): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR;
}

/** `text` without ANSI colour and style sequences. */
export function stripColour(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC is what the sequences start with
  return text.replace(/\u001b\[[0-9;]*m/g, "");
}
