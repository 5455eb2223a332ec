/**
 * DSDT (ACPI 6.5 §5.2.11.1): the AML definition block of bunvmm's x86_64 machine. `\_SB` holds COM1, the
 * power button, the CPU hotplug controller, the processor container and the GED; `\_S5` is at the root.
 * @module
 */
import { type Aml, encodeAml, scope } from "./aml.ts";
import { cpuHotplugAml } from "./cpu-hotplug-aml.ts";
import { SYSTEM_BUS } from "./dsdt-paths.ts";
import { gedAml } from "./ged-aml.ts";
import { com1Aml, powerButtonAml, s5Aml } from "./platform-aml.ts";
import { buildSdt, SDT_HEADER } from "./sdt-header.ts";
import { checkMaxVcpus } from "./vcpu-counts.ts";

/** The DSDT's signature, also its key in AcpiTables. */
export const DSDT_SIGNATURE = "DSDT";
/** Revision 2 and above: AML integers are 64-bit (§5.2.11.1). */
export const DSDT_REVISION = 2;

/** The DSDT's terms, in order: the GED comes after what its _EVT calls, CPUS after the registers it reads. */
export function dsdtAml(maxVcpus: number): Aml[] {
  return [scope(SYSTEM_BUS, [com1Aml(), powerButtonAml(), ...cpuHotplugAml(maxVcpus), gedAml()]), s5Aml()];
}

/** Builds the DSDT for CPUs 0..maxVcpus-1. */
export function buildDsdt(maxVcpus: number): Uint8Array {
  checkMaxVcpus(maxVcpus);
  const body = encodeAml(dsdtAml(maxVcpus));
  return buildSdt(DSDT_SIGNATURE, DSDT_REVISION, SDT_HEADER.SIZE + body.length, (_view, bytes) =>
    bytes.set(body, SDT_HEADER.SIZE),
  );
}
