// Builds the bench's guests into a scratch directory: raw images for bunvmm (test/guests/*.S, as the
// tests build them) and the same code as PVH ELFs for QEMU (guests/pvh-entry.S appended).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { assembleRawGuest, GUEST_INCLUDE_DIR } from "../../src/demo/assemble.ts";
import { sh } from "../tools.ts";

const TEST_GUESTS = join(import.meta.dir, "..", "..", "test", "guests");
const OWN_GUESTS = join(import.meta.dir, "guests");

/**
 * The guests: `counter` (test/guests/counter.S, PIO=0: every vCPU increments its counter, no exits),
 * `hotplug` (test/guests/hotplug.S: every vCPU loops on the CPU hotplug controller's MMIO registers),
 * `mmio-spin` (guests/mmio-spin.S: every vCPU counts and stores to unowned MMIO, for QEMU).
 */
export type GuestName = "counter" | "hotplug" | "mmio-spin";

const source = (g: GuestName) =>
  g === "mmio-spin" ? join(OWN_GUESTS, `${g}.S`) : join(TEST_GUESTS, `${g}.S`);

/** bunvmm's raw image of `guest`; returns its path. */
export function buildRaw(outDir: string, guest: GuestName): string {
  const path = join(outDir, `${guest}.bin`);
  writeFileSync(path, assembleRawGuest(source(guest)));
  return path;
}

/** The same guest as a PVH ELF for QEMU, booting `vcpus` vCPUs; returns its path. */
export function buildPvh(outDir: string, guest: GuestName, vcpus: number): string {
  const stem = join(outDir, `${guest}-pvh-${vcpus}`);
  sh([
    "as",
    "--32",
    "-I",
    GUEST_INCLUDE_DIR,
    "-I",
    TEST_GUESTS,
    "--defsym",
    `VCPUS=${vcpus}`,
    "-o",
    `${stem}.o`,
    source(guest),
    join(OWN_GUESTS, "pvh-entry.S"),
  ]);
  sh(["ld", "-m", "elf_i386", "-T", join(OWN_GUESTS, "guest.ld"), "-o", `${stem}.elf`, `${stem}.o`]);
  return `${stem}.elf`;
}
