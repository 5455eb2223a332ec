/**
 * `bunvmm acpi-tables CONFIG --out DIR`: writes the ACPI tables a VM with this config would get, one
 * file per table named as acpixtract names them (dsdt.dat, facp.dat, apic.dat, xsdt.dat, rsdp.dat), so
 * they can be inspected with `iasl -d`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { defineCommand } from "citty";
import { loadConfigFile } from "../../config/index.ts";
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
    const acpi = platformAcpiTables({ bootVcpus: config.cpus.boot_vcpus, maxVcpus: config.cpus.max_vcpus });
    const dir = resolve(args.out);
    mkdirSync(dir, { recursive: true });
    for (const [signature, bytes] of acpi.tables) {
      const file = join(dir, `${signature.toLowerCase()}.dat`);
      writeFileSync(file, bytes);
      log.info(
        `${signature} at 0x${acpi.addresses.get(signature)!.toString(16)}: ${bytes.length} bytes -> ${file}`,
      );
    }
  },
});
