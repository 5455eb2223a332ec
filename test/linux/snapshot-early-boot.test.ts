/**
 * Debian's kernel snapshotted during early boot (PVH, right after its banner) and restored: the
 * restored VM reaches the later milestones (ACPI tables, SMP set-up from our MADT, the IOAPIC, the end
 * of early set-up) with no complaint, and what the two VMs printed together is one boot. Takes minutes
 * on our emulated machines; `npm run test:linux` runs it with the other Linux boots.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Vm } from "bunvmm";
import { debianKernel } from "../helpers/debian-kernel.ts";
import { tinyInitramfs } from "../helpers/initramfs.ts";

const CMDLINE = "console=ttyS0 earlyprintk=ttyS0 noxsave clearcpuid=cx16 acpi_force_table_verification";
const COMPLAINTS =
  /ACPI Error|ACPI BIOS Error|ACPI Warning|ACPI BIOS Warning|\[Firmware Bug\]|\[Firmware Warn\]/;
/** Printed after the snapshot point (the banner), in this order. */
const LATER = [
  ["the ACPI tables", /ACPI: DSDT 0x[0-9A-F]{16} [0-9A-F]{6} \(v\d\d BUNVMM/],
  ["the SMP set-up from our MADT", /smpboot: Allowing 8 CPUs, 6 hotplug CPUs/],
  ["the IOAPIC", /IOAPIC\[0\]: apic_id 0, version \d+, address 0xfec00000, GSI 0-23/],
  ["the end of early set-up", /Kernel command line: /],
] as const;
const work = mkdtempSync(join(tmpdir(), "bunvmm-linux-snapshot-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("vmlinux (PVH) snapshotted after its banner and restored reaches the later milestones", async () => {
  const dir = join(work, "early-boot");
  let before: string;
  {
    await using vm = await Vm.create({
      cpus: { boot_vcpus: 2, max_vcpus: 8, hide_features: ["cx16", "xsave"] },
      memory: { size: 256 << 20 },
      payload: {
        kernel: debianKernel().vmlinuxPath,
        format: "elf",
        initramfs: tinyInitramfs(),
        cmdline: CMDLINE,
      },
      serial: { mode: "off" },
    });
    await vm.boot();
    await vm.serial.waitFor(/Linux version 6\.1\.\d+/, 150_000);
    await vm.pause();
    await vm.snapshot(dir);
    await vm.shutdown();
    before = vm.serial.text;
  }
  expect(before).not.toMatch(LATER[LATER.length - 1]![1]); // the snapshot really is early

  await using vm = await Vm.restore(dir, { resume: true });
  const deadline = performance.now() + 150_000;
  for (const [what, re] of LATER) {
    await vm.serial.waitFor(re, Math.max(1, deadline - performance.now())).catch((e: Error) => {
      throw new Error(`the restored kernel never printed ${what} (${re}): ${e.message}`);
    });
  }
  const whole = before + vm.serial.text;
  expect(whole).toMatch(
    /Linux version 6\.1\.\d+[\s\S]*Command line: [\s\S]*BIOS-e820[\s\S]*smpboot: Allowing 8 CPUs[\s\S]*Kernel command line: /,
  );
  expect(whole.split("\n").find((l) => COMPLAINTS.test(l))).toBeUndefined();
}, 400_000);
