/**
 * Every table through iasl 20200925: `iasl -d` disassembles it with no error or warning, the disassembly
 * compiles again with 0 errors, 0 warnings and 0 remarks, and the recompiled bytes are ours except where
 * iasl stamps itself (creator id and revision, hence the checksum) and where it writes 0 as an End Tag
 * checksum. The decoded text is checked for the fields that matter to Linux.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  ACPI_RESET,
  ACPI_RESET_VALUE,
  ACPI_SLEEP_CONTROL,
  ACPI_SLEEP_STATUS,
} from "../../../../devices/acpi-power.ts";
import { SDT_HEADER } from "../../../../src/arch/x86_64/acpi/sdt-header.ts";
import { RSDP_KEY } from "../../../../src/arch/x86_64/acpi/tables.ts";
import {
  ACPI_POWER_PORT,
  IOAPIC_BASE,
  LAPIC_BASE,
  VIRTIO_GSI_BASE,
  VIRTIO_MMIO_BASE,
  VIRTIO_MMIO_SIZE,
} from "../../../../src/arch/x86_64/layout.ts";
import { platformAcpiTables } from "../../../../src/vmm/platform.ts";
import { VCPU_CASES } from "../../../helpers/acpi-vcpu-cases.ts";
import { iaslSummary, problemLines, runTool, tempDir, toHex, writeDat } from "../../../helpers/acpica.ts";

const END_TAG = 0x79;
/** Header bytes iasl rewrites when it compiles: the checksum and its own creator id and revision. */
const IASL_STAMPED = new Set([
  SDT_HEADER.CHECKSUM,
  ...Array.from({ length: 8 }, (_, i) => SDT_HEADER.CREATOR_ID + i),
]);

function differences(ours: Uint8Array, theirs: Uint8Array): number[] {
  expect(theirs.length).toBe(ours.length);
  const at: number[] = [];
  for (let i = 0; i < ours.length; i++) if (ours[i] !== theirs[i]) at.push(i);
  return at;
}

const hexAddress = (value: number, digits: number): string =>
  value.toString(16).toUpperCase().padStart(digits, "0");

/** A pattern for consecutive lines of iasl's decoded table, each holding the given text after its offsets. */
function consecutive(...lines: string[]): RegExp {
  const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  return new RegExp(lines.map(escapeRegExp).join("\\n.*"));
}

describe.each(VCPU_CASES)("iasl (%s)", (_name, counts) => {
  const { tables, addresses } = platformAcpiTables(counts);
  const dir = tempDir("iasl");
  afterAll(() => dir[Symbol.dispose]());
  for (const [key, bytes] of tables) writeDat(dir.path, `${key.toLowerCase()}.dat`, bytes);
  const bytesOf = (key: string): Uint8Array => tables.get(key) ?? new Uint8Array();
  const dsl = (key: string): string => readFileSync(join(dir.path, `${key.toLowerCase()}.dsl`), "utf8");

  /** Disassembles `key`.dat; the .dsl is left for the other tests. */
  function disassemble(key: string): void {
    const run = runTool("iasl", ["-d", `${key.toLowerCase()}.dat`], dir.path);
    expect(problemLines(run.output)).toEqual([]);
    expect(run.output).toContain("Binary file appears to be a valid ACPI table");
    expect(run.exitCode).toBe(0);
    expect(existsSync(join(dir.path, `${key.toLowerCase()}.dsl`))).toBe(true);
    expect(dsl(key)).not.toContain("****");
  }

  /** Compiles `key`.dsl with `options` and returns the AML. */
  function recompile(key: string, options: readonly string[] = []): Uint8Array {
    const out = `re-${key.toLowerCase()}${options.join("")}`;
    const run = runTool("iasl", [...options, "-p", out, `${key.toLowerCase()}.dsl`], dir.path);
    expect(iaslSummary(run)).toEqual({ errors: 0, warnings: 0, remarks: 0 });
    expect(problemLines(run.output)).toEqual([]);
    expect(run.exitCode).toBe(0);
    return new Uint8Array(readFileSync(join(dir.path, `${out}.aml`)));
  }

  test.each(["FACP", "APIC", "XSDT"])("%s: disassembles cleanly and recompiles to our bytes", (key) => {
    disassemble(key);
    expect(differences(bytesOf(key), recompile(key)).filter((i) => !IASL_STAMPED.has(i))).toEqual([]);
  });

  test("DSDT: disassembles cleanly; recompiles cleanly, and to our bytes with -on", () => {
    disassemble("DSDT");
    recompile("DSDT");
    // -on: no name-path shortening, so names stay as we wrote them.
    const ours = bytesOf("DSDT");
    const theirs = recompile("DSDT", ["-on"]);
    const rest = differences(ours, theirs).filter((i) => !IASL_STAMPED.has(i));
    // COM1, PRES and GED_ each have one resource template: iasl writes 0 as its End Tag checksum.
    expect(rest.length).toBe(3);
    for (const i of rest) {
      expect(ours[i - 1]).toBe(END_TAG);
      expect(theirs[i]).toBe(0);
    }
  });

  test("RSDP: iasl's data-table compiler builds the same 36 bytes, checksums included", () => {
    // iasl -d cannot read a binary RSDP (it takes bytes 4-7 of "RSD PTR " as a table length), so we write
    // the RSDP in iasl's data-table syntax (the `iasl -T RSDP` template) and let iasl compute it.
    const source = [
      '[0008]                          Signature : "RSD PTR "',
      "[0001]                           Checksum : 00",
      '[0006]                             Oem ID : "BUNVMM"',
      "[0001]                           Revision : 02",
      "[0004]                       RSDT Address : 00000000",
      "[0004]                             Length : 00000024",
      `[0008]                       XSDT Address : ${hexAddress(addresses.get("XSDT") ?? 0, 16)}`,
      "[0001]                  Extended Checksum : 00",
      "[0003]                           Reserved : 000000",
    ].join("\n");
    writeFileSync(join(dir.path, "rsdp-template.asl"), `${source}\n`);
    const run = runTool("iasl", ["rsdp-template.asl"], dir.path);
    expect(iaslSummary(run)).toEqual({ errors: 0, warnings: 0, remarks: 0 });
    expect(toHex(new Uint8Array(readFileSync(join(dir.path, "rsdp-template.aml"))))).toBe(
      toHex(bytesOf(RSDP_KEY)),
    );
  });

  test("FADT as iasl decodes it: hardware-reduced, reset and sleep registers, boot flags, X_DSDT", () => {
    disassemble("FACP");
    const text = dsl("FACP");
    const ioByteRegister = (name: string, port: number): RegExp =>
      consecutive(
        `${name} : [Generic Address Structure]`,
        "Space ID : 01 [SystemIO]",
        "Bit Width : 08",
        "Bit Offset : 00",
        "Encoded Access Width : 01 [Byte Access:8]",
        `Address : ${hexAddress(port, 16)}`,
      );
    for (const decoded of [
      /Revision : 06/,
      /FADT Minor Revision : 05/,
      /Hardware Reduced \(V5\) : 1/,
      /Reset Register Supported \(V2\) : 1/,
      /Control Method Power Button \(V1\) : 1/,
      /Legacy Devices Supported \(V2\) : 1/,
      /8042 Present on ports 60\/64 \(V2\) : 1/,
      /VGA Not Present \(V4\) : 1/,
      /CMOS RTC Not Present \(V5\) : 1/,
      ioByteRegister("Reset Register", ACPI_POWER_PORT + ACPI_RESET),
      new RegExp(`Value to cause reset : ${hexAddress(ACPI_RESET_VALUE, 2)}`),
      ioByteRegister("Sleep Control Register", ACPI_POWER_PORT + ACPI_SLEEP_CONTROL),
      ioByteRegister("Sleep Status Register", ACPI_POWER_PORT + ACPI_SLEEP_STATUS),
      new RegExp(`DSDT Address : ${hexAddress(addresses.get("DSDT") ?? 0, 16)}`),
      /Hypervisor ID : 20204D4D564E5542/, // "BUNVMM  " read as a little-endian u64
    ]) {
      expect(text).toMatch(decoded);
    }
  });

  test("MADT as iasl decodes it: local APIC address, per-CPU Enabled / Online Capable, IOAPIC, override, NMI", () => {
    disassemble("APIC");
    const text = dsl("APIC");
    expect(text).toMatch(/Revision : 05/);
    expect(text).toContain(`Local Apic Address : ${hexAddress(LAPIC_BASE, 8)}`);
    expect(text).toMatch(/PC-AT Compatibility : 1/);
    const flag = (name: string): number[] =>
      [...text.matchAll(new RegExp(`${name} : (\\d)`, "g"))].map((m) => Number(m[1]));
    const cpus = Array.from({ length: counts.maxVcpus }, (_, cpu) => cpu);
    expect(flag("Processor Enabled")).toEqual(cpus.map((cpu) => (cpu < counts.bootVcpus ? 1 : 0)));
    expect(flag("Runtime Online Capable")).toEqual(cpus.map((cpu) => (cpu < counts.bootVcpus ? 0 : 1)));
    const ids = [...text.matchAll(/Local Apic ID : ([0-9A-F]{2})/g)].map((m) =>
      Number.parseInt(m[1] ?? "", 16),
    );
    expect(ids).toEqual(cpus);
    expect(text).toMatch(
      consecutive(
        "Subtable Type : 01 [I/O APIC]",
        "Length : 0C",
        "I/O Apic ID : 00",
        "Reserved : 00",
        `Address : ${hexAddress(IOAPIC_BASE, 8)}`,
        "Interrupt : 00000000",
      ),
    );
    expect(text).toMatch(
      consecutive(
        "Subtable Type : 02 [Interrupt Source Override]",
        "Length : 0A",
        "Bus : 00",
        "Source : 00",
        "Interrupt : 00000002",
      ),
    );
    expect(text).toMatch(
      consecutive(
        "Subtable Type : 04 [Local APIC NMI]",
        "Length : 06",
        "Processor ID : FF",
        "Flags (decoded below) : 0000",
      ),
    );
    expect(text).toMatch(/Interrupt Input LINT : 01/);
  });

  test("DSDT as iasl decodes it: one processor device per CPU, the register Fields at the device's widths", () => {
    disassemble("DSDT");
    const text = dsl("DSDT");
    expect([...text.matchAll(/Name \(_HID, "ACPI0007"/g)].length).toBe(counts.maxVcpus);
    expect([...text.matchAll(/Method \(_EJ0, 1/g)].length).toBe(counts.maxVcpus - 1);
    expect(text).toContain(
      "Field (PRST, DWordAcc, NoLock, Preserve)\n            {\n                CSEL,   32\n            }",
    );
    const statusField =
      "Field (PRST, ByteAcc, NoLock, WriteAsZeros) { Offset (0x04), CPEN, 1, CINS, 1, CRMV, 1, CEJ0, 1,";
    expect(text.replace(/\s+/g, " ")).toContain(statusField.replace(/\s+/g, " "));
    expect(text).toMatch(/Field \(GDST, DWordAcc, NoLock, Preserve\)\s*\{\s*GDAT,\s*32\s*\}/);
    expect(text).toMatch(/Name \(\\_S5, Package \(0x01\)[^{]*\{\s*0x05\s*\}/);
  });
});

/** A machine with two disks, an rng and a console: four virtio-mmio transports in the DSDT. */
const VIRTIO_DEVICES = {
  disks: [
    { path: "/nonexistent/a.img", readonly: false, direct: false, id: "disk0" },
    { path: "/nonexistent/b.img", readonly: true, direct: false, id: "disk1" },
  ],
  rng: { src: "/dev/urandom" },
  console: { mode: "tty" as const },
};
const VIRTIO_TRANSPORTS = 4;

describe("iasl with virtio disks, rng and console", () => {
  const { tables } = platformAcpiTables({ bootVcpus: 2, maxVcpus: 8 }, undefined, VIRTIO_DEVICES);
  const dir = tempDir("iasl-virtio");
  afterAll(() => dir[Symbol.dispose]());
  const dsdt = tables.get("DSDT") ?? new Uint8Array();
  writeDat(dir.path, "dsdt.dat", dsdt);

  test("DSDT: disassembles and recompiles cleanly; one LNRO0005 device per transport, window and edge GSI", () => {
    const dis = runTool("iasl", ["-d", "dsdt.dat"], dir.path);
    expect(problemLines(dis.output)).toEqual([]);
    expect(dis.exitCode).toBe(0);
    const text = readFileSync(join(dir.path, "dsdt.dsl"), "utf8");
    const run = runTool("iasl", ["-on", "-p", "re-dsdt", "dsdt.dsl"], dir.path);
    expect(iaslSummary(run)).toEqual({ errors: 0, warnings: 0, remarks: 0 });
    expect(problemLines(run.output)).toEqual([]);
    // Our bytes again, but for iasl's stamps and the End Tag checksums (3 platform templates + 4).
    const theirs = new Uint8Array(readFileSync(join(dir.path, "re-dsdt.aml")));
    const rest = differences(dsdt, theirs).filter((i) => !IASL_STAMPED.has(i));
    expect(rest.length).toBe(3 + VIRTIO_TRANSPORTS);

    expect([...text.matchAll(/Name \(_HID, "LNRO0005"\)/g)].length).toBe(VIRTIO_TRANSPORTS);
    expect([...text.matchAll(/Name \(_CCA, One\)/g)].length).toBe(VIRTIO_TRANSPORTS);
    for (let uid = 0; uid < VIRTIO_TRANSPORTS; uid++) {
      const base = VIRTIO_MMIO_BASE + uid * VIRTIO_MMIO_SIZE;
      expect(text).toContain(`Device (VR0${uid})`);
      expect(text.replace(/\s+/g, " ")).toContain(
        `Memory32Fixed (ReadWrite, 0x${hexAddress(base, 8)}, // Address Base 0x${hexAddress(VIRTIO_MMIO_SIZE, 8)}, // Address Length )`,
      );
      expect(text.replace(/\s+/g, " ")).toContain(
        `Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 0x${hexAddress(VIRTIO_GSI_BASE + uid, 8)}, }`,
      );
    }
  });
});
