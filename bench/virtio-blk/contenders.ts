// The VMMs under test and how each one boots the benchmark guest on the image: bunvmm with a
// `[[disks]]` table (through the page cache, and with `direct = true`), QEMU 7.2 microvm with
// `cache=none` and with its default cache mode (writeback).

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { qemuMicrovmArgs } from "../tools.ts";

export type ContenderKey = "bunvmm" | "bunvmm_direct" | "qemu_none" | "qemu";

export interface Contender {
  key: ContenderKey;
  label: string;
  /** Why it cannot run here, or null when it can. */
  unavailable: string | null;
  /** Exit status of a run that ended with the guest's power-off. */
  powerOffCode: number;
  command(elf: string, image: string): string[];
}

export const REPO = join(import.meta.dir, "..", "..");
const BUN = join(REPO, "node_modules", ".bin", "bun");
const CLI = join(REPO, "src", "cli", "main.ts");
/** Guest RAM for every contender; the guest needs under 1 MiB. */
export const MEMORY_MIB = 64;
/** The disk's id in bunvmm's config (`vm.counters().devices[id]`). */
const DISK_ID = "bench0";

/** The TOML bunvmm gets: the guest ELF, one disk, serial on stdout. */
export function bunvmmConfig(elf: string, image: string, direct: boolean): string {
  return [
    "[memory]",
    `size = "${MEMORY_MIB}M"`,
    "[payload]",
    `kernel = ${JSON.stringify(elf)}`,
    'format = "elf"',
    "[serial]",
    'mode = "tty"',
    "[[disks]]",
    `id = "${DISK_ID}"`,
    `path = ${JSON.stringify(image)}`,
    `direct = ${direct}`,
    "",
  ].join("\n");
}

function bunvmm(key: "bunvmm" | "bunvmm_direct", direct: boolean, dir: string): Contender {
  return {
    key,
    label: direct ? "bunvmm, direct = true" : "bunvmm",
    unavailable: null,
    powerOffCode: 0,
    command: (elf, image) => {
      const config = join(dir, `${key}.toml`);
      writeFileSync(config, bunvmmConfig(elf, image, direct));
      return [BUN, CLI, "run", "--log-level", "warn", config];
    },
  };
}

function qemu(
  key: "qemu_none" | "qemu",
  cache: "none" | null,
  exe: string | null,
  version: string,
): Contender {
  return {
    key,
    label: `QEMU ${version} microvm, ${cache ? `cache=${cache}` : "default cache"}`,
    unavailable: exe ? null : "not installed",
    powerOffCode: 1, // isa-debug-exit: (value << 1) | 1 with value 0
    command: (elf, image) => [
      ...qemuMicrovmArgs(exe, MEMORY_MIB),
      "-drive",
      `file=${image},format=raw,if=none,id=d0${cache ? `,cache=${cache}` : ""}`,
      "-device",
      "virtio-blk-device,drive=d0",
      "-kernel",
      elf,
    ],
  };
}

export function qemuVersion(exe: string): string {
  const r = Bun.spawnSync([exe, "--version"], { stdout: "pipe", timeout: 10_000 });
  return /version (\d+\.\d+(?:\.\d+)?)/.exec(r.stdout.toString())?.[1] ?? "?";
}

/** Every contender, in table order; `dir` is where bunvmm's configs are written. */
export function contenders(dir: string): Contender[] {
  const exe = Bun.which("qemu-system-x86_64");
  const version = exe ? qemuVersion(exe) : "";
  return [
    bunvmm("bunvmm", false, dir),
    bunvmm("bunvmm_direct", true, dir),
    qemu("qemu", null, exe, version),
    qemu("qemu_none", "none", exe, version),
  ];
}
