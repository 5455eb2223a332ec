#!/usr/bin/env bun
/**
 * The `bunvmm` command: a thin layer over the library API (src/index.ts). User errors print one line
 * and exit 1; a guest crash exits 2; anything else is a bunvmm bug and prints in full.
 */
import { type CommandDef, defineCommand, runCommand as runCitty, showUsage } from "citty";
import packageJson from "../../package.json" with { type: "json" };
import { isBunvmmError } from "../errors.ts";
import { createLogger } from "../vmm/logger.ts";
import { acpiTablesCommand } from "./commands/acpi-tables.ts";
import { remoteCommand } from "./commands/remote.ts";
import { runCommand } from "./commands/run.ts";
import { validateCommand } from "./commands/validate.ts";
import { EXIT_ERROR, isUserError } from "./errors.ts";

// citty's CommandDef is invariant in its args; commands differ in theirs.
// biome-ignore lint/suspicious/noExplicitAny: see above
type AnyCommand = CommandDef<any>;
const subCommands: Record<string, AnyCommand> = {
  run: runCommand,
  validate: validateCommand,
  remote: remoteCommand,
  "acpi-tables": acpiTablesCommand,
};

export const main: AnyCommand = defineCommand({
  meta: { name: "bunvmm", version: packageJson.version, description: "A KVM virtual machine monitor on Bun" },
  subCommands,
});

async function cli(rawArgs: string[]): Promise<void> {
  const log = createLogger();
  const first = rawArgs[0];
  try {
    if (first === "--version" || first === "-v") {
      process.stdout.write(`${packageJson.version}\n`);
      return;
    }
    const sub = first !== undefined ? subCommands[first] : undefined;
    if (rawArgs.includes("--help") || rawArgs.includes("-h") || first === undefined) {
      await showUsage(sub ?? main, sub ? main : undefined);
      return;
    }
    if (!sub) {
      await showUsage(main);
      log.error(
        `unknown command ${JSON.stringify(first)}; expected one of: ${Object.keys(subCommands).join(", ")}`,
      );
      process.exitCode = EXIT_ERROR;
      return;
    }
    await runCitty(main, { rawArgs });
  } catch (e) {
    process.exitCode = EXIT_ERROR;
    if (isUserError(e) || isBunvmmError(e)) log.error(e.message);
    else if (e instanceof Error && e.name === "CLIError") log.error(e.message);
    else log.error(e);
  }
}

if (import.meta.main) await cli(process.argv.slice(2));
