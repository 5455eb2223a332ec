/**
 * `bunvmm acpi-tables CONFIG --out DIR`: writes the ACPI tables a VM with this config would get, one
 * file per table named as acpixtract names them (dsdt.dat, facp.dat, apic.dat, xsdt.dat, rsdp.dat), so
 * they can be inspected with `iasl -d`.
 */
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { describeErrno } from "../../../ffi/errno-names.ts";
import { loadConfigFile } from "../../config/index.ts";
import { BunvmmError } from "../../errors.ts";
import { createLogger, type LogLevelName } from "../../vmm/logger.ts";
import { platformAcpiTables } from "../../vmm/platform.ts";
import { sharedArgs } from "./shared-args.ts";

export const acpiTablesCommand = defineCommand({
  meta: { name: "acpi-tables", description: "Write the ACPI tables a VM would get, one .dat file per table" },
  args: {
    config: { type: "positional", required: true, description: "Path to the VM's TOML file" },
    out: {
      type: "string",
      required: true,
      valueHint: "DIR",
      description: "Directory to write the tables to",
    },
    ...sharedArgs,
  },
  async run({ args }) {
    const log = createLogger(args["log-level"] as LogLevelName);
    const config = await loadConfigFile(args.config);
    const acpi = platformAcpiTables(
      { bootVcpus: config.cpus.boot_vcpus, maxVcpus: config.cpus.max_vcpus },
      undefined,
      config,
    );
    const dir = resolve(args.out);
    makeOutputDirectory(dir);
    for (const [signature, bytes] of acpi.tables) {
      const file = join(dir, `${signature.toLowerCase()}.dat`);
      hostStep(`acpi-tables: cannot write ${file}`, () => writeFileSync(file, bytes));
      log.info(
        `${signature} at 0x${acpi.addresses.get(signature)!.toString(16)}: ${bytes.length} bytes -> ${file}`,
      );
    }
  },
});

/** `--out` must be a directory, or a path where one can be made (parents included). */
function makeOutputDirectory(dir: string): void {
  let isDirectory: boolean | undefined;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch {
    isDirectory = undefined; // not there (or not reachable): mkdir below says which
  }
  if (isDirectory === false)
    throw new BunvmmError("input", `acpi-tables --out ${dir}: exists and is not a directory`);
  if (isDirectory === undefined)
    hostStep(`acpi-tables --out ${dir}: cannot create the directory`, () =>
      mkdirSync(dir, { recursive: true }),
    );
}

/** Runs a file operation; its failure becomes one line: `what`, then the errno in words. */
function hostStep(what: string, step: () => void): void {
  try {
    step();
  } catch (e) {
    const errno =
      typeof e === "object" && e !== null && "errno" in e ? Math.abs(Number(e.errno)) : Number.NaN;
    const why = Number.isInteger(errno) ? describeErrno(errno) : e instanceof Error ? e.message : String(e);
    throw new BunvmmError("host", `${what}: ${why}`, { cause: e });
  }
}
