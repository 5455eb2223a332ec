/**
 * The vCPU counts the tables describe, checked once: boot CPUs are enabled in the MADT, the rest up to
 * max are hot-pluggable, and every possible CPU gets a processor device in the DSDT.
 * @module
 */
import { AcpiError } from "./acpi-error.ts";

/**
 * Type 0 (xAPIC) MADT entries hold 8-bit APIC ids and id 0xff is the broadcast id, so ids 0..254 fit;
 * more CPUs would need Local x2APIC entries (type 9), which bunvmm's 255-vCPU config cap never needs.
 */
export const XAPIC_MAX_CPUS = 255;

/** How many vCPUs run at boot and how many the guest may ever see; CPU n has APIC id n and ACPI UID n. */
export interface VcpuCounts {
  readonly bootVcpus: number;
  readonly maxVcpus: number;
}

/** Throws AcpiError unless 1 <= maxVcpus <= XAPIC_MAX_CPUS. */
export function checkMaxVcpus(maxVcpus: number): void {
  if (!Number.isInteger(maxVcpus) || maxVcpus < 1 || maxVcpus > XAPIC_MAX_CPUS) {
    throw new AcpiError(
      "maxVcpus",
      maxVcpus,
      `must be an integer from 1 to ${XAPIC_MAX_CPUS} (xAPIC MADT entries)`,
    );
  }
}

/** Throws AcpiError unless 1 <= bootVcpus <= maxVcpus <= XAPIC_MAX_CPUS. */
export function checkVcpuCounts({ bootVcpus, maxVcpus }: VcpuCounts): void {
  checkMaxVcpus(maxVcpus);
  if (!Number.isInteger(bootVcpus) || bootVcpus < 1 || bootVcpus > maxVcpus) {
    throw new AcpiError("bootVcpus", bootVcpus, `must be an integer from 1 to maxVcpus (${maxVcpus})`);
  }
}
