/**
 * C test guests: freestanding 32-bit C (test/guests/virtio/*.c) compiled by gcc and linked with ld into
 * an ELF that bunvmm's PVH loader boots (`format = "elf"`): a Xen PHYS32_ENTRY note names the 32-bit
 * entry, the image loads at 1 MiB.
 *
 * gcc flags: -m32 -ffreestanding -nostdlib, -mgeneral-regs-only (no x87/SSE: the nested KVM the tests
 * run on emulates guest code and cannot run them), -mno-red-zone, -fno-pic, -O2, no stack protector,
 * no unwind tables, and -fno-tree-loop-distribute-patterns so gcc does not turn memset's own loop into
 * a call to memset. bunvmm's loader reads ELF64 only (a vmlinux is ELF64 with 32-bit entry code), so
 * the 32-bit link is converted with `objcopy -O elf64-x86-64`; the code stays 32-bit.
 *
 * Builds are cached per source set and defines for the test run.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ACPI_S5_SLEEP_VALUE, ACPI_SLEEP_CONTROL } from "../../devices/acpi-power.ts";
import { ACPI_POWER_PORT, COM1_PORT } from "../../src/arch/x86_64/layout.ts";

export const C_GUEST_DIR = join(import.meta.dir, "..", "guests", "virtio");

export const C_GUEST_CFLAGS = [
  "-m32",
  "-ffreestanding",
  "-nostdlib",
  "-mgeneral-regs-only",
  "-mno-red-zone",
  "-fno-pic",
  "-O2",
  "-fno-stack-protector",
  "-fno-asynchronous-unwind-tables",
  "-fno-tree-loop-distribute-patterns",
  "-Wall",
  "-Wextra",
  "-Werror",
];

/** Defines every C guest gets: where COM1 and the ACPI sleep register are, what powers off. */
export const C_GUEST_PLATFORM_DEFINES: Readonly<Record<string, number>> = {
  COM1_PORT,
  ACPI_SLEEP_CONTROL: ACPI_POWER_PORT + ACPI_SLEEP_CONTROL,
  S5_SLEEP_VALUE: ACPI_S5_SLEEP_VALUE,
};

/** A compiler, linker or objcopy failure, with its output. */
export class CGuestBuildError extends Error {
  override readonly name = "CGuestBuildError";
}

function run(cmd: string[]): void {
  const p = Bun.spawnSync(cmd, { stderr: "pipe", stdout: "pipe" });
  if (p.exitCode !== 0) {
    throw new CGuestBuildError(
      `${cmd.join(" ")} failed (${p.exitCode}): ${p.stderr.toString().trim() || p.stdout.toString().trim()}`,
    );
  }
}

const outDir = mkdtempSync(join(tmpdir(), "bunvmm-c-guests-"));
const cache = new Map<string, string>();

/**
 * Path of the ELF64 built from `sources` (file names in test/guests/virtio, with runtime.c added)
 * and `defines` (as -DNAME=VALUE, after the platform defines).
 */
export function cGuestElf(sources: readonly string[], defines: Record<string, number> = {}): string {
  const all = { ...C_GUEST_PLATFORM_DEFINES, ...defines };
  const files = ["runtime.c", ...sources];
  const key = `${files.join(",")}:${JSON.stringify(all)}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const dir = mkdtempSync(join(outDir, "build-"));
  const objects = files.map((f) => {
    const obj = join(dir, `${f}.o`);
    const flags = Object.entries(all).map(([k, v]) => `-D${k}=0x${v.toString(16)}`);
    run(["gcc", ...C_GUEST_CFLAGS, ...flags, "-c", "-o", obj, join(C_GUEST_DIR, f)]);
    return obj;
  });
  const elf32 = join(dir, "guest32.elf");
  const elf64 = join(dir, "guest.elf");
  run(["ld", "-m", "elf_i386", "-nostdlib", "-T", join(C_GUEST_DIR, "guest.ld"), "-o", elf32, ...objects]);
  run(["objcopy", "-O", "elf64-x86-64", elf32, elf64]);
  cache.set(key, elf64);
  return elf64;
}
