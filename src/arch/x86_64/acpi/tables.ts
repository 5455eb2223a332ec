/**
 * All of bunvmm's ACPI tables, laid out at their guest-physical addresses in [ACPI_TABLES_START,
 * ACPI_TABLES_END): the RSDP at RSDP_ADDRESS, then DSDT, FADT, MADT and XSDT, each pointer being the
 * address where the pointed-to table lands. The builder copies `blob` to ACPI_TABLES_START.
 * @module
 */

import { hex } from "../../../numbers.ts";
import { ACPI_TABLES_END, ACPI_TABLES_START, RSDP_ADDRESS } from "../layout.ts";
import { AcpiError } from "./acpi-error.ts";
import { buildDsdt, DSDT_SIGNATURE, type DsdtContent } from "./dsdt.ts";
import { buildFadt, FADT_SIGNATURE, type FadtPowerRegisters } from "./fadt.ts";
import { buildMadt, MADT_SIGNATURE } from "./madt.ts";
import { buildRsdp, RSDP } from "./rsdp.ts";
import { checkVcpuCounts, type VcpuCounts } from "./vcpu-counts.ts";
import { buildXsdt, XSDT_SIGNATURE } from "./xsdt.ts";

/** The key of the RSDP in AcpiTables.tables (it has no 4-character signature). */
export const RSDP_KEY = "RSDP";
/** Tables start on 16-byte boundaries (the RSDP must, for the legacy scan; the rest for tidiness). */
export const TABLE_ALIGNMENT = 16;

/** Where the tables may go: guest-physical [start, end), the RSDP at rsdpAddress. */
export interface AcpiTablesWindow {
  readonly start: number;
  readonly end: number;
  readonly rsdpAddress: number;
}

/** bunvmm's window (layout.ts): the BIOS area, reserved in e820, with the RSDP where the legacy scan looks. */
export const ACPI_TABLES_WINDOW: AcpiTablesWindow = {
  start: ACPI_TABLES_START,
  end: ACPI_TABLES_END,
  rsdpAddress: RSDP_ADDRESS,
};

/** What the tables describe: the vCPU counts, the devices' DSDT objects, the power registers. */
export interface AcpiTablesInput extends VcpuCounts {
  readonly dsdt: DsdtContent;
  readonly power: FadtPowerRegisters;
}

/** The tables and where they go. */
export interface AcpiTables {
  /** Each table's bytes by signature ("RSDP", "XSDT", "FACP", "APIC", "DSDT"), in blob order. */
  readonly tables: ReadonlyMap<string, Uint8Array>;
  /** Each table's guest-physical address, by the same keys. */
  readonly addresses: ReadonlyMap<string, number>;
  /** Everything, to be copied at the window's start (gaps are zero). */
  readonly blob: Uint8Array;
  /** Where the RSDP is: for boot_params.acpi_rsdp_addr. */
  readonly rsdpAddress: number;
}

const alignUp = (value: number, alignment: number): number => Math.ceil(value / alignment) * alignment;

/**
 * Builds every table for these vCPU counts and devices and lays them out in `window` (bunvmm's unless a
 * test narrows it); throws AcpiError if the counts are invalid or the tables don't fit. The machine's
 * own input comes from src/vmm/platform.ts (`platformAcpiTables`).
 */
export function buildAcpiTables(
  counts: AcpiTablesInput,
  window: AcpiTablesWindow = ACPI_TABLES_WINDOW,
): AcpiTables {
  checkVcpuCounts(counts);
  const { start, end, rsdpAddress } = window;
  if (rsdpAddress < start || rsdpAddress % TABLE_ALIGNMENT !== 0) {
    throw new AcpiError(
      "RSDP address",
      hex(rsdpAddress),
      `must be ${TABLE_ALIGNMENT}-byte aligned, at or above ${hex(start)}`,
    );
  }
  const tables = new Map<string, Uint8Array>();
  const addresses = new Map<string, number>();
  let next = rsdpAddress + RSDP.SIZE;
  const place = (key: string, bytes: Uint8Array): number => {
    const address = alignUp(next, TABLE_ALIGNMENT);
    tables.set(key, bytes);
    addresses.set(key, address);
    next = address + bytes.length;
    return address;
  };

  const dsdt = place(DSDT_SIGNATURE, buildDsdt(counts.dsdt));
  const fadt = place(FADT_SIGNATURE, buildFadt({ dsdt, power: counts.power }));
  const madt = place(MADT_SIGNATURE, buildMadt(counts));
  const xsdt = place(XSDT_SIGNATURE, buildXsdt([fadt, madt]));
  const rsdp = buildRsdp(xsdt);
  if (next > end) {
    throw new AcpiError(
      "ACPI tables",
      `${next - start} bytes`,
      `do not fit in [${hex(start)}, ${hex(end)}) for maxVcpus ${counts.maxVcpus}`,
    );
  }

  const blob = new Uint8Array(next - start);
  blob.set(rsdp, rsdpAddress - start);
  for (const [key, bytes] of tables) blob.set(bytes, (addresses.get(key) ?? 0) - start);
  return {
    tables: new Map([[RSDP_KEY, rsdp], ...tables]),
    addresses: new Map([[RSDP_KEY, rsdpAddress], ...addresses]),
    blob,
    rsdpAddress,
  };
}
