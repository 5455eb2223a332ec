/**
 * The DSDT under ACPICA's interpreter (acpiexec 20200925, loading our FACP, APIC and DSDT). acpiexec
 * cannot reach bunvmm's devices: it backs every OperationRegion with plain simulated memory, and `-vr`
 * prints each access with its address and width. So a small test SSDT (compiled here by iasl) pokes the
 * status byte and GDAT, and the tests check what the guest's AML would do on real hardware: which devices
 * it notifies, and that every access has exactly the width the device models accept.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { GED_NOTIFICATION_OFFSET, GED_SIZE, GedEvent } from "../../../../devices/acpi-ged.ts";
import { cpuDeviceName } from "../../../../devices/cpu-hotplug.ts";
import {
  CPU_EJECT,
  CPU_ENABLED,
  CPU_HOTPLUG_CSEL_OFFSET,
  CPU_HOTPLUG_STATUS_OFFSET,
  CPU_INSERTING,
  CPU_REMOVING,
} from "../../../../devices/cpu-hotplug-controller.ts";
import {
  CPU_HOTPLUG_BASE,
  GED_BASE,
  VIRTIO_MMIO_BASE,
  VIRTIO_MMIO_SIZE,
} from "../../../../src/arch/x86_64/layout.ts";
import { platformAcpiTables } from "../../../../src/vmm/platform.ts";
import { VCPU_CASES } from "../../../helpers/acpi-vcpu-cases.ts";
import { iaslSummary, problemLines, runTool, tempDir, writeDat } from "../../../helpers/acpica.ts";

const STATUS_ADDRESS = CPU_HOTPLUG_BASE + CPU_HOTPLUG_STATUS_OFFSET;
const hex = (value: number): string => `0x${value.toString(16).toUpperCase()}`;

/**
 * Test-only helpers over the same simulated memory: TSET (value) stores the status byte as the controller
 * would present it; TGED (value) stores GDAT. They use their own regions, not the DSDT's Fields.
 */
const TEST_SSDT = `DefinitionBlock ("", "SSDT", 2, "BUNVMM", "ACPITEST", 1)
{
    OperationRegion (TSTR, SystemMemory, ${hex(STATUS_ADDRESS)}, One)
    Field (TSTR, ByteAcc, NoLock, Preserve)
    {
        TSTS, 8
    }
    OperationRegion (TGER, SystemMemory, ${hex(GED_BASE + GED_NOTIFICATION_OFFSET)}, ${hex(GED_SIZE)})
    Field (TGER, DWordAcc, NoLock, Preserve)
    {
        TGDT, 32
    }
    Method (\\TSET, 1) { TSTS = Arg0 }
    Method (\\TGED, 1) { TGDT = Arg0 }
}
`;

/** The (address, bit width) pairs the device models accept: CSEL and GDAT 4 bytes, the status byte 1. */
const ALLOWED_ACCESSES = new Set([
  `${CPU_HOTPLUG_BASE + CPU_HOTPLUG_CSEL_OFFSET}/32`,
  `${STATUS_ADDRESS}/8`,
  `${GED_BASE + GED_NOTIFICATION_OFFSET}/32`,
]);

interface Access {
  readonly write: boolean;
  readonly value: number;
  readonly address: number;
  readonly bits: number;
}

/** One `evaluate` command's output: the name, the region accesses it made, its result. */
interface Evaluation {
  readonly path: string;
  readonly accesses: readonly Access[];
  readonly text: string;
}

const ACCESS = /AcpiExec: SystemMemory (Read |Write): Val ([0-9A-F]+) Addr ([0-9A-F]+) BitWidth ([0-9A-F]+)/g;

function evaluations(output: string): Evaluation[] {
  return output
    .split(/^Evaluating /m)
    .slice(1)
    .map((text) => ({
      path: text.slice(0, text.indexOf("\n")).trim(),
      text,
      accesses: [...text.matchAll(ACCESS)].map((m) => ({
        write: m[1] === "Write",
        value: Number.parseInt(m[2] ?? "", 16),
        address: Number.parseInt(m[3] ?? "", 16),
        bits: Number.parseInt(m[4] ?? "", 16),
      })),
    }));
}

const integerResult = (e: Evaluation): number | undefined => {
  const m = /\[Integer\] = ([0-9A-F]+)/.exec(e.text);
  return m ? Number.parseInt(m[1] ?? "", 16) : undefined;
};

describe.each(VCPU_CASES)("acpiexec (%s)", (_name, counts) => {
  const { tables } = platformAcpiTables(counts);
  const dir = tempDir("acpiexec");
  afterAll(() => dir[Symbol.dispose]());
  const files = ["FACP", "APIC", "DSDT"].map((key) =>
    writeDat(dir.path, `${key.toLowerCase()}.dat`, tables.get(key) ?? new Uint8Array()),
  );
  const cpus = Array.from({ length: counts.maxVcpus }, (_, cpu) => `\\_SB.CPUS.${cpuDeviceName(cpu)}`);
  // acpiexec takes about 10 ms per command, so _MAT is read for the CPUs around the edges only.
  const matCpus = [...new Set([0, 1, counts.bootVcpus - 1, counts.bootVcpus, counts.maxVcpus - 1])].filter(
    (c) => c < counts.maxVcpus,
  );

  // The script, in order. Notify handlers run on acpiexec threads, so notifications are counted over the
  // whole run, and the hotplug scans come before the long _STA sweep, which gives those threads time.
  const script = [
    "evaluate \\_SB.CPUS.CSCN",
    `evaluate \\TSET ${CPU_ENABLED | CPU_INSERTING | CPU_REMOVING}`,
    `evaluate ${cpus[0]}._STA`,
    "evaluate \\_SB.CPUS.CSCN",
    `evaluate \\TSET ${CPU_REMOVING}`,
    "evaluate \\_SB.CPUS.CSCN",
    `evaluate \\TGED ${GedEvent.CpuHotplug | GedEvent.PowerButton}`,
    "evaluate \\_SB.GED._EVT 5",
    ...(counts.maxVcpus > 1 ? [`evaluate ${cpus[1]}._EJ0 1`] : []),
    "evaluate \\TSET 0",
    ...cpus.map((cpu) => `evaluate ${cpu}._STA`),
    ...matCpus.map((cpu) => `evaluate ${cpus[cpu]}._MAT`),
  ];

  const compile = (() => {
    writeFileSync(join(dir.path, "acpitest.asl"), TEST_SSDT);
    return runTool("iasl", ["acpitest.asl"], dir.path);
  })();
  // Commands go to the debugger's stdin, one a line: `-b` takes at most 1023 characters.
  const run = runTool(
    "acpiexec",
    ["-vr", ...files, "acpitest.aml"],
    dir.path,
    `${[...script, "quit"].join("\n")}\n`,
  );
  const evals = evaluations(run.output);
  const notifies = (value: string): string[] =>
    [
      ...run.output.matchAll(new RegExp(`Received a \\w+ Notify on \\[(\\w+)\\] \\w+ Value ${value}`, "g")),
    ].map((m) => m[1] ?? "");

  test("the test SSDT compiles; acpiexec loads the tables and runs every command without an AML error", () => {
    expect(iaslSummary(compile)).toEqual({ errors: 0, warnings: 0, remarks: 0 });
    expect(problemLines(run.output)).toEqual([]);
    expect(run.output).not.toContain("AE_");
    expect(run.exitCode).toBe(0);
    expect(evals.map((e) => e.path)).toEqual(script.map((c) => c.replace(/^evaluate (\S+).*$/, "$1")));
  });

  test("every register access has the width the device accepts (CSEL 4 bytes, status 1 byte, GDAT 4 bytes)", () => {
    const all = evals.flatMap((e) => e.accesses);
    expect(all.length).toBeGreaterThan(0);
    expect(all.filter((a) => !ALLOWED_ACCESSES.has(`${a.address}/${a.bits}`))).toEqual([]);
  });

  test("the DSDT writes exactly one status bit per write (WriteAsZeros: no read-modify-write ack)", () => {
    const writes = evals
      .filter((e) => e.path.startsWith("\\_SB"))
      .flatMap((e) => e.accesses)
      .filter((a) => a.write && a.address === STATUS_ADDRESS)
      .map((a) => a.value);
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.filter((v) => v !== CPU_INSERTING && v !== CPU_REMOVING && v !== CPU_EJECT)).toEqual([]);
    // The first ack came while the byte read CPEN|CINS|CRMV: Preserve would have written all three back.
    expect(writes[0]).toBe(CPU_INSERTING);
  });

  test("CSCN notifies Device Check on inserts and Eject Request on removals, for every CPU; the GED does too", () => {
    const names = cpus.map((cpu) => cpu.slice(-4)).sort();
    expect(notifies("0x01").sort()).toEqual(names);
    // One scan with CRMV set, then the GED's _EVT scans again.
    expect(notifies("0x03").sort()).toEqual([...names, ...names].sort());
    expect(notifies("0x80")).toEqual(["PWRB"]);
  });

  test("_STA is 0xF while CPEN reads 1 and 0 after; _MAT is the CPU's enabled Local APIC entry", () => {
    const first = evals.find((e) => e.path === `${cpus[0]}._STA`);
    expect(first === undefined ? undefined : integerResult(first)).toBe(0xf);
    for (const cpu of cpus) {
      const sta = evals.filter((e) => e.path === `${cpu}._STA`).at(-1);
      expect(sta === undefined ? undefined : integerResult(sta)).toBe(0);
    }
    for (const id of matCpus) {
      const mat = evals.find((e) => e.path === `${cpus[id]}._MAT`);
      const idHex = id.toString(16).toUpperCase().padStart(2, "0");
      expect(mat?.text).toContain(`[Buffer] Length 08 =     0000: 00 08 ${idHex} ${idHex} 01 00 00 00`);
    }
  });

  test("_EJ0 selects its CPU and writes CEJ0", () => {
    if (counts.maxVcpus === 1) return;
    const ej0 = evals.find((e) => e.path === `${cpus[1]}._EJ0`);
    expect(ej0?.accesses.filter((a) => a.write)).toEqual([
      { write: true, value: 1, address: CPU_HOTPLUG_BASE + CPU_HOTPLUG_CSEL_OFFSET, bits: 32 },
      { write: true, value: CPU_EJECT, address: STATUS_ADDRESS, bits: 8 },
    ]);
  });
});

describe("acpiexec with virtio disks, rng and console", () => {
  const devices = {
    disks: [
      { path: "/nonexistent/a.img", readonly: false, direct: false, id: "disk0" },
      { path: "/nonexistent/b.img", readonly: false, direct: false, id: "disk1" },
    ],
    rng: { src: "/dev/urandom" },
    console: { mode: "file" as const, file: "/nonexistent/console.log" },
  };
  const transports = ["VR00", "VR01", "VR02", "VR03"];
  const { tables } = platformAcpiTables({ bootVcpus: 2, maxVcpus: 8 }, undefined, devices);
  const dir = tempDir("acpiexec-virtio");
  afterAll(() => dir[Symbol.dispose]());
  const files = ["FACP", "APIC", "DSDT"].map((key) =>
    writeDat(dir.path, `${key.toLowerCase()}.dat`, tables.get(key) ?? new Uint8Array()),
  );
  const script = transports.flatMap((d) =>
    ["_HID", "_UID", "_CCA", "_CRS"].map((m) => `evaluate \\_SB.${d}.${m}`),
  );
  const run = runTool("acpiexec", ["-vr", ...files], dir.path, `${[...script, "quit"].join("\n")}\n`);
  const evals = evaluations(run.output);

  test("loads the tables and evaluates every transport's objects without an AML error", () => {
    expect(problemLines(run.output)).toEqual([]);
    expect(run.output).not.toContain("AE_");
    expect(run.exitCode).toBe(0);
    expect(evals.map((e) => e.path)).toEqual(script.map((c) => c.replace(/^evaluate (\S+).*$/, "$1")));
  });

  test("each transport: _HID LNRO0005, _UID its index, _CCA 1, a _CRS buffer with its window", () => {
    transports.forEach((d, uid) => {
      const of = (m: string) => evals.find((e) => e.path === `\\_SB.${d}.${m}`)!;
      expect(of("_HID").text).toContain('[String] Length 08 = "LNRO0005"');
      expect(integerResult(of("_UID"))).toBe(uid);
      expect(integerResult(of("_CCA"))).toBe(1);
      // Memory32Fixed: tag 86, length 9, read-write, then the base, little-endian.
      const base = VIRTIO_MMIO_BASE + uid * VIRTIO_MMIO_SIZE;
      const le = [0, 8, 16, 24].map((s) => ((base >>> s) & 0xff).toString(16).toUpperCase().padStart(2, "0"));
      expect(of("_CRS").text).toContain(`86 09 00 01 ${le.join(" ")}`);
    });
  });
});
