/**
 * An unmodified Linux kernel (Debian's cloud kernel) booted by bunvmm, through the 64-bit bzImage
 * protocol and through PVH, checked at every milestone it reaches on our emulated machines before its
 * int3 self-test (which the emulating nested KVM of our machines cannot run): banner, command line, our e820 map, our ACPI tables, the SMP set-up
 * from our MADT, the IOAPIC, and no complaint about our tables. Then the same boot while the test pauses
 * and resumes the VM continuously (the seed's reproducer). Every boot has a virtio disk, an rng and a
 * console attached (their LNRO0005 devices in the DSDT). `npm run test:linux` runs this file alone.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Vm } from "bunvmm";
import { describeE820, e820Table } from "../../src/arch/x86_64/e820.ts";
import { platformAcpiTables } from "../../src/vmm/platform.ts";
import { debianKernel } from "../helpers/debian-kernel.ts";
import { tinyInitramfs } from "../helpers/initramfs.ts";
import { Rng, randomGap } from "../helpers/rng.ts";

const RAM = 256 << 20;
const BOOT_VCPUS = 2;
const MAX_VCPUS = 8;
const CMDLINE = "console=ttyS0 earlyprintk=ttyS0 noxsave clearcpuid=cx16 acpi_force_table_verification";
/** A disk, an rng and a console, so the DSDT carries virtio-mmio transports. */
const deviceDir = mkdtempSync(join(tmpdir(), "bunvmm-early-boot-"));
afterAll(() => rmSync(deviceDir, { recursive: true, force: true }));
const DISK_BYTES = 1 << 20;
const DEVICES = {
  disks: [{ path: join(deviceDir, "disk.img"), readonly: false, direct: false, id: "disk0" }],
  rng: { src: "/dev/urandom" },
  console: { mode: "file" as const, file: join(deviceDir, "hvc0.log") },
};
writeFileSync(DEVICES.disks[0]!.path, new Uint8Array(DISK_BYTES));

/** What Linux must not say about a machine we built. (The serial console ends lines with \r\n.) */
const COMPLAINTS =
  /ACPI Error|ACPI BIOS Error|ACPI Warning|ACPI BIOS Warning|\[Firmware Bug\]|\[Firmware Warn\]/;

function config(kernel: string, format: "bzimage" | "elf") {
  return {
    cpus: { boot_vcpus: BOOT_VCPUS, max_vcpus: MAX_VCPUS, hide_features: ["cx16", "xsave"] },
    memory: { size: RAM },
    payload: { kernel, format, initramfs: tinyInitramfs(), cmdline: CMDLINE },
    serial: { mode: "off" },
    ...DEVICES,
  };
}

const hex16 = (n: number) => n.toString(16).toUpperCase().padStart(16, "0");
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Every line we expect, in the order the kernel prints them. */
function milestones(): Array<[string, RegExp]> {
  const acpi = platformAcpiTables({ bootVcpus: BOOT_VCPUS, maxVcpus: MAX_VCPUS }, undefined, DEVICES);
  const tables = ["RSDP", "XSDT", "FACP", "DSDT", "APIC"].map((sig): [string, RegExp] => [
    `ACPI ${sig} at our address with our OEM id`,
    new RegExp(`ACPI: ${sig} 0x${hex16(acpi.addresses.get(sig)!)} [0-9A-F]{6} \\(v\\d\\d BUNVMM`),
  ]);
  return [
    ["the banner", /Linux version 6\.1\.\d+/],
    ["the command line", new RegExp(`Command line: ${escapeRegExp(CMDLINE)}\r?\n`)],
    [
      "the e820 map we built",
      new RegExp(
        `BIOS-provided physical RAM map:\r?\n${describeE820(e820Table(RAM))
          .map((l) => `[^\n]*BIOS-e820: ${escapeRegExp(l)}\r?\n`)
          .join("")}`,
      ),
    ],
    ["the initramfs placed", /RAMDISK: \[mem 0x[0-9a-f]+-0x[0-9a-f]+\]/],
    ...tables,
    ["the SMP set-up from our MADT", /smpboot: Allowing 8 CPUs, 6 hotplug CPUs/],
    ["the IOAPIC", /IOAPIC\[0\]: apic_id 0, version \d+, address 0xfec00000, GSI 0-23/],
    ["the command line echoed at the end of early set-up", /Kernel command line: /],
  ];
}

async function expectMilestones(vm: Vm, deadlineMs: number) {
  const deadline = performance.now() + deadlineMs;
  for (const [what, re] of milestones()) {
    const left = Math.max(1, deadline - performance.now());
    await vm.serial.waitFor(re, left).catch((e: Error) => {
      throw new Error(`the kernel never printed ${what} (${re}): ${e.message}`);
    });
  }
  const complaint = vm.serial.text.split("\n").find((l) => COMPLAINTS.test(l));
  expect(complaint).toBeUndefined();
}

describe("Linux early boot", () => {
  test("vmlinux through PVH reaches every early milestone with our tables, CPUs and memory map", async () => {
    await using vm = await Vm.create(config(debianKernel().vmlinuxPath, "elf"));
    await vm.boot();
    await expectMilestones(vm, 150_000);
  }, 200_000);

  test("bzImage through the 64-bit boot protocol reaches the same milestones", async () => {
    await using vm = await Vm.create(config(debianKernel().bzImagePath, "bzimage"));
    await vm.boot();
    await expectMilestones(vm, 280_000);
  }, 320_000);

  test("500+ pause/resume cycles during the PVH boot: the kernel still gets there and no cycle hangs", async () => {
    await using vm = await Vm.create(config(debianKernel().vmlinuxPath, "elf"));
    await vm.boot();
    const last = /Kernel command line: /;
    const rng = new Rng(0xb007);
    let cycles = 0;
    const deadline = performance.now() + 200_000;
    while ((cycles < 500 || !last.test(vm.serial.text)) && performance.now() < deadline) {
      await vm.pause(); // each has its own 1 s deadline: a hang fails the test with the stuck vCPU
      await randomGap(rng, 2);
      await vm.resume();
      await randomGap(rng, 10); // let the kernel run between pauses, so the boot gets somewhere
      cycles++;
    }
    expect(cycles).toBeGreaterThanOrEqual(500);
    await expectMilestones(vm, 10_000);
    console.info(`${cycles} pause/resume cycles during the boot`);
  }, 260_000);
});
