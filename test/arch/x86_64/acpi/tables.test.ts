import { describe, expect, test } from "bun:test";
import { ACPI_RESET, ACPI_RESET_VALUE } from "../../../../devices/acpi-power.ts";
import { AcpiError } from "../../../../src/arch/x86_64/acpi/acpi-error.ts";
import { FADT, FadtFlag } from "../../../../src/arch/x86_64/acpi/fadt.ts";
import { GAS, GasAddressSpace } from "../../../../src/arch/x86_64/acpi/generic-address.ts";
import {
  IO_APIC,
  LOCAL_APIC,
  LOCAL_APIC_ENABLED,
  LOCAL_APIC_ONLINE_CAPABLE,
  MADT,
  MadtEntryType,
} from "../../../../src/arch/x86_64/acpi/madt.ts";
import { RSDP } from "../../../../src/arch/x86_64/acpi/rsdp.ts";
import { SDT_HEADER } from "../../../../src/arch/x86_64/acpi/sdt-header.ts";
import { RSDP_KEY, TABLE_ALIGNMENT } from "../../../../src/arch/x86_64/acpi/tables.ts";
import { XAPIC_MAX_CPUS } from "../../../../src/arch/x86_64/acpi/vcpu-counts.ts";
import { XSDT_ENTRIES, XSDT_ENTRY_SIZE } from "../../../../src/arch/x86_64/acpi/xsdt.ts";
import {
  ACPI_POWER_PORT,
  ACPI_TABLES_END,
  ACPI_TABLES_START,
  IOAPIC_BASE,
  LAPIC_BASE,
  RSDP_ADDRESS,
} from "../../../../src/arch/x86_64/layout.ts";
import { MAX_VCPUS } from "../../../../src/config/limits.ts";
import { platformAcpiTables } from "../../../../src/vmm/platform.ts";
import { VCPU_CASES } from "../../../helpers/acpi-vcpu-cases.ts";

const LE = true;
const sum = (bytes: Uint8Array): number => bytes.reduce((a, b) => a + b, 0) & 0xff;
const view = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const ascii = (bytes: Uint8Array, offset: number, length: number): string =>
  String.fromCharCode(...bytes.subarray(offset, offset + length));

function table(tables: ReadonlyMap<string, Uint8Array>, key: string): Uint8Array {
  const bytes = tables.get(key);
  if (bytes === undefined) throw new Error(`no ${key}`);
  return bytes;
}

describe.each(VCPU_CASES)("platformAcpiTables(%s)", (_name, counts) => {
  const built = platformAcpiTables(counts);
  const { tables, addresses, blob } = built;

  test("builds RSDP, DSDT, FACP, APIC and XSDT", () => {
    expect([...tables.keys()].sort()).toEqual(["APIC", "DSDT", "FACP", RSDP_KEY, "XSDT"]);
  });

  test("every table sums to 0 mod 256 and its header length is its size", () => {
    for (const [key, bytes] of tables) {
      if (key === RSDP_KEY) continue;
      expect(sum(bytes)).toBe(0);
      expect(ascii(bytes, SDT_HEADER.SIGNATURE, 4)).toBe(key);
      expect(view(bytes).getUint32(SDT_HEADER.LENGTH, LE)).toBe(bytes.length);
      expect(ascii(bytes, SDT_HEADER.OEM_ID, 6)).toBe("BUNVMM");
      expect(ascii(bytes, SDT_HEADER.OEM_TABLE_ID, 8)).toBe("BUNVMM  ");
      expect(ascii(bytes, SDT_HEADER.CREATOR_ID, 4)).toBe("BVMM");
    }
  });

  test("RSDP: revision 2, both checksums, the XSDT's address", () => {
    const rsdp = table(tables, RSDP_KEY);
    expect(rsdp.length).toBe(RSDP.SIZE);
    expect(ascii(rsdp, RSDP.SIGNATURE, 8)).toBe("RSD PTR ");
    expect(rsdp[RSDP.REVISION]).toBe(2);
    expect(sum(rsdp.subarray(0, RSDP.V1_SIZE))).toBe(0);
    expect(sum(rsdp)).toBe(0);
    expect(view(rsdp).getUint32(RSDP.LENGTH, LE)).toBe(RSDP.SIZE);
    expect(Number(view(rsdp).getBigUint64(RSDP.XSDT_ADDRESS, LE))).toBe(addresses.get("XSDT") ?? -1);
    expect(built.rsdpAddress).toBe(RSDP_ADDRESS);
  });

  test("tables sit 16-byte aligned inside the window without overlapping, and the blob holds them there", () => {
    const placed = [...addresses].sort((a, b) => a[1] - b[1]);
    let end = ACPI_TABLES_START;
    for (const [key, address] of placed) {
      const bytes = table(tables, key);
      expect(address % TABLE_ALIGNMENT).toBe(0);
      expect(address).toBeGreaterThanOrEqual(end);
      end = address + bytes.length;
      expect(end).toBeLessThanOrEqual(ACPI_TABLES_END);
      expect(blob.subarray(address - ACPI_TABLES_START, end - ACPI_TABLES_START)).toEqual(bytes);
    }
    expect(blob.length).toBe(end - ACPI_TABLES_START);
  });

  test("XSDT lists FACP and APIC; FADT's X_DSDT is the DSDT's address", () => {
    const xsdt = view(table(tables, "XSDT"));
    const entries = (xsdt.byteLength - XSDT_ENTRIES) / XSDT_ENTRY_SIZE;
    const listed = Array.from({ length: entries }, (_, i) =>
      Number(xsdt.getBigUint64(XSDT_ENTRIES + i * XSDT_ENTRY_SIZE, LE)),
    );
    expect(listed).toEqual([addresses.get("FACP") ?? -1, addresses.get("APIC") ?? -1]);
    const fadt = view(table(tables, "FACP"));
    expect(Number(fadt.getBigUint64(FADT.X_DSDT, LE))).toBe(addresses.get("DSDT") ?? -1);
    expect(fadt.getUint32(FADT.DSDT, LE)).toBe(0);
  });

  test("FADT: hardware-reduced with a reset register at the ACPI power port", () => {
    const fadt = view(table(tables, "FACP"));
    expect(fadt.getUint32(FADT.FLAGS, LE) & (FadtFlag.HW_REDUCED_ACPI | FadtFlag.RESET_REG_SUP)).toBe(
      FadtFlag.HW_REDUCED_ACPI | FadtFlag.RESET_REG_SUP,
    );
    expect(fadt.getUint8(FADT.RESET_REG + GAS.ADDRESS_SPACE_ID)).toBe(GasAddressSpace.SystemIO);
    expect(Number(fadt.getBigUint64(FADT.RESET_REG + GAS.ADDRESS, LE))).toBe(ACPI_POWER_PORT + ACPI_RESET);
    expect(fadt.getUint8(FADT.RESET_VALUE)).toBe(ACPI_RESET_VALUE);
  });

  test("MADT: LAPIC_BASE, one Local APIC per possible CPU (boot Enabled, rest Online Capable), the IOAPIC", () => {
    const madt = table(tables, "APIC");
    const v = view(madt);
    expect(v.getUint32(MADT.LOCAL_APIC_ADDRESS, LE)).toBe(LAPIC_BASE);
    const lapics: { uid: number; apicId: number; flags: number }[] = [];
    let ioapic = -1;
    for (let at = MADT.ENTRIES; at < madt.length; at += madt[at + 1] ?? madt.length) {
      if (madt[at] === MadtEntryType.LocalApic) {
        lapics.push({
          uid: v.getUint8(at + LOCAL_APIC.PROCESSOR_UID),
          apicId: v.getUint8(at + LOCAL_APIC.APIC_ID),
          flags: v.getUint32(at + LOCAL_APIC.FLAGS, LE),
        });
      }
      if (madt[at] === MadtEntryType.IoApic) ioapic = v.getUint32(at + IO_APIC.ADDRESS, LE);
    }
    expect(lapics).toEqual(
      Array.from({ length: counts.maxVcpus }, (_, cpu) => ({
        uid: cpu,
        apicId: cpu,
        flags: cpu < counts.bootVcpus ? LOCAL_APIC_ENABLED : LOCAL_APIC_ONLINE_CAPABLE,
      })),
    );
    expect(ioapic).toBe(IOAPIC_BASE);
  });
});

describe("platformAcpiTables() checks", () => {
  test.each([
    ["no CPUs", { bootVcpus: 0, maxVcpus: 1 }, "bootVcpus"],
    ["more boot CPUs than possible", { bootVcpus: 3, maxVcpus: 2 }, "bootVcpus"],
    ["256 CPUs (beyond xAPIC ids)", { bootVcpus: 1, maxVcpus: 256 }, "maxVcpus"],
    ["a fractional count", { bootVcpus: 1, maxVcpus: 2.5 }, "maxVcpus"],
  ])("refuses %s", (_what, counts, field) => {
    expect(() => platformAcpiTables(counts)).toThrow(AcpiError);
    expect(() => platformAcpiTables(counts)).toThrow(field);
  });

  test("throws a clear error when the tables do not fit the window", () => {
    const window = {
      start: ACPI_TABLES_START,
      end: ACPI_TABLES_START + 0x400,
      rsdpAddress: ACPI_TABLES_START,
    };
    expect(() => platformAcpiTables({ bootVcpus: 1, maxVcpus: 255 }, window)).toThrow(
      /ACPI tables "\d+ bytes": do not fit in \[0xe0000, 0xe0400\)/,
    );
  });

  test("the xAPIC limit is the config's vCPU cap", () => {
    expect(XAPIC_MAX_CPUS).toBe(MAX_VCPUS);
  });
});
