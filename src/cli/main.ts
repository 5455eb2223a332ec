#!/usr/bin/env bun
/**
 * The `bunvmm` command: a thin layer over the library API (src/index.ts). User errors print one line
 * and exit 1; a guest crash exits 2; anything else is a bunvmm bug and prints in full. The command line
 * is checked before citty reads it (argv.ts): unknown flags and extra arguments are errors.
 *
 * Threads: Bun's main thread (the VMM thread).
 */
import { type ArgsDef, type CommandDef, defineCommand, renderUsage, runCommand as runCitty } from "citty";
import packageJson from "../../package.json" with { type: "json" };
import { didYouMean } from "../config/_did-you-mean.ts";
import { isBunvmmError } from "../errors.ts";
import { createLogger } from "../vmm/logger.ts";
import { checkArgv, stripColour, UsageError, wantsColour } from "./argv.ts";
import { acpiTablesCommand } from "./commands/acpi-tables.ts";
import { remoteCommand } from "./commands/remote.ts";
import { restoreCommand } from "./commands/restore.ts";
import { runCommand } from "./commands/run.ts";
import { snapshotCommand } from "./commands/snapshot.ts";
import { validateCommand } from "./commands/validate.ts";
import { EXIT_ERROR } from "./errors.ts";

// citty's CommandDef is invariant in its args; commands differ in theirs.
// biome-ignore lint/suspicious/noExplicitAny: see above
type AnyCommand = CommandDef<any>;

/** What `bunvmm --version` and `bunvmm version` print. */
const VERSION_LINE = `${packageJson.name} ${packageJson.version}`;

const helpArgs = {
  command: { type: "positional", required: false, description: "The command to explain" },
} as const satisfies ArgsDef;

const helpCommand = defineCommand({
  meta: { name: "help", description: "Show how to use bunvmm, or one of its commands" },
  args: helpArgs,
  async run({ args }) {
    if (args.command === undefined) return printUsage(main);
    await printUsage(commandNamed(args.command), main);
  },
});

const versionCommand = defineCommand({
  meta: { name: "version", description: "Print bunvmm's version" },
  run() {
    process.stdout.write(`${VERSION_LINE}\n`);
  },
});

const subCommands: Record<string, AnyCommand> = {
  run: runCommand,
  validate: validateCommand,
  remote: remoteCommand,
  "acpi-tables": acpiTablesCommand,
  snapshot: snapshotCommand,
  restore: restoreCommand,
  help: helpCommand,
  version: versionCommand,
};

export const main: AnyCommand = defineCommand({
  meta: { name: "bunvmm", version: packageJson.version, description: "A KVM virtual machine monitor on Bun" },
  subCommands,
});

/** @throws {UsageError} naming the commands there are, and the one probably meant. */
function commandNamed(name: string): AnyCommand {
  const sub = Object.hasOwn(subCommands, name) ? subCommands[name] : undefined;
  if (sub) return sub;
  const names = Object.keys(subCommands);
  const guess = didYouMean(name, names);
  throw new UsageError(
    `unknown command ${JSON.stringify(name)}; expected one of: ${names.join(", ")}` +
      (guess ? ` (did you mean ${JSON.stringify(guess)}?)` : ""),
  );
}

/** citty's usage text on stdout, coloured only for a terminal without NO_COLOR. */
async function printUsage(cmd: AnyCommand, parent?: AnyCommand): Promise<void> {
  const text = await renderUsage(cmd, parent);
  process.stdout.write(`${wantsColour(process.stdout) ? text : stripColour(text)}\n`);
}

async function cli(rawArgs: string[]): Promise<void> {
  const log = createLogger();
  const first = rawArgs[0];
  try {
    if (first === undefined || first === "--help" || first === "-h") {
      const [topic] = rawArgs.slice(1); // `bunvmm --help run` is `bunvmm help run`
      checkArgv("bunvmm help", helpArgs, rawArgs.slice(1));
      return await (topic === undefined ? printUsage(main) : printUsage(commandNamed(topic), main));
    }
    if (first === "--version" || first === "-v") {
      checkArgv("bunvmm", {}, rawArgs.slice(1));
      process.stdout.write(`${VERSION_LINE}\n`);
      return;
    }
    if (first.startsWith("-")) {
      throw new UsageError(`unknown option ${first}; bunvmm takes a command first (bunvmm help lists them)`);
    }
    const sub = commandNamed(first);
    const rest = rawArgs.slice(1);
    const dashes = rest.indexOf("--");
    const flags = dashes < 0 ? rest : rest.slice(0, dashes);
    if (flags.includes("--help") || flags.includes("-h")) return await printUsage(sub, main);
    checkArgv(`bunvmm ${first}`, (sub.args ?? {}) as ArgsDef, rest);
    await runCitty(main, { rawArgs });
  } catch (e) {
    process.exitCode = EXIT_ERROR;
    if (isBunvmmError(e)) log.error(e.message);
    else if (e instanceof Error && e.name === "CLIError") log.error(stripColour(e.message));
    else log.error(e);
  }
}

if (import.meta.main) await cli(process.argv.slice(2));
