// The VMMs under test and how to start each one on a given guest image.

import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { qemuMicrovmArgs } from "../tools.ts";
import type { Flavour } from "./build.ts";

export type ContenderKey = "floor" | "bun_floor" | "bunvmm" | "bunvmm_bin" | "qemu";

export interface Contender {
  key: ContenderKey;
  label: string;
  /** Why it cannot run here, or null when it can. */
  unavailable: string | null;
  flavour: Flavour;
  /** Exit status of a run that ended with the guest's power-off write. */
  powerOffCode: number;
  command(image: string, vcpus: number): string[];
}

/** Guest RAM of every contender, MiB (bunvmm's config and QEMU's -m). */
const GUEST_RAM_MIB = 64;

export const REPO = join(import.meta.dir, "..", "..");
const BUN = join(REPO, "node_modules", ".bin", "bun");
const CLI = join(REPO, "src", "cli", "main.ts");
const BIN = join(REPO, "dist", "bunvmm");

export function floor(exe: string | null): Contender {
  return {
    key: "floor",
    label: "C floor",
    unavailable: exe === null ? "gcc not installed" : null,
    flavour: "raw",
    powerOffCode: 0,
    command: (image, vcpus) => [exe ?? "floor", image, String(vcpus)],
  };
}

/**
 * The runtime's floor for RSS and start-up: bare Bun starting N idle smol Workers, as bunvmm starts
 * its vCPU workers. It runs no guest, so it has idle figures only (its loop runs fail and show "—").
 */
export function bunFloor(): Contender {
  return {
    key: "bun_floor",
    label: "Bun + N idle Workers",
    unavailable: null,
    flavour: "raw",
    powerOffCode: 0,
    command: (_image, vcpus) => [BUN, join(import.meta.dir, "bun-floor", "main.ts"), String(vcpus)],
  };
}

/** bunvmm run on a config written next to the image. */
function bunvmmContender(
  key: "bunvmm" | "bunvmm_bin",
  label: string,
  argv0: string[],
  unavailable: string | null,
  logArgs: string[],
): Contender {
  return {
    key,
    label,
    unavailable,
    flavour: "raw",
    powerOffCode: 0,
    command: (image, vcpus) => [...argv0, "run", ...logArgs, writeConfig(image, vcpus)],
  };
}

function writeConfig(image: string, vcpus: number): string {
  const path = `${image}.${vcpus}.toml`;
  const toml = [
    "[cpus]",
    `boot_vcpus = ${vcpus}`,
    `max_vcpus = ${vcpus}`,
    "[memory]",
    `size = "${GUEST_RAM_MIB}M"`,
    "[payload]",
    `kernel = ${JSON.stringify(image)}`,
    'format = "raw"',
    "[serial]",
    'mode = "tty"',
    "",
  ].join("\n");
  writeFileSync(path, toml);
  return path;
}

/** `--log-level warn` if this bunvmm's `run --help` mentions it, else nothing. */
function logArgs(argv0: string[]): string[] {
  const r = Bun.spawnSync([...argv0, "run", "--help"], { stdout: "pipe", stderr: "pipe", timeout: 20_000 });
  const help = r.stdout.toString() + r.stderr.toString();
  return help.includes("--log-level") ? ["--log-level", "warn"] : [];
}

export function bunvmm(): Contender {
  const have = existsSync(CLI);
  const argv0 = [BUN, CLI];
  return bunvmmContender(
    "bunvmm",
    "bunvmm",
    argv0,
    have ? null : "src/cli/main.ts missing",
    have ? logArgs(argv0) : [],
  );
}

export function bunvmmBin(): Contender {
  const have = existsSync(BIN);
  return bunvmmContender(
    "bunvmm_bin",
    "bunvmm (dist/bunvmm)",
    [BIN],
    have ? null : "dist/bunvmm not built",
    have ? logArgs([BIN]) : [],
  );
}

export function qemu(): Contender {
  const exe = Bun.which("qemu-system-x86_64");
  return {
    key: "qemu",
    label: exe ? qemuLabel(exe) : "QEMU",
    unavailable: exe ? null : "not installed",
    flavour: "pvh",
    powerOffCode: 1, // isa-debug-exit: (value << 1) | 1 with value 0
    command: (image, vcpus) => [
      ...qemuMicrovmArgs(exe, GUEST_RAM_MIB),
      "-smp",
      String(vcpus),
      "-kernel",
      image,
    ],
  };
}

function qemuLabel(exe: string): string {
  const r = Bun.spawnSync([exe, "--version"], { stdout: "pipe", timeout: 10_000 });
  const m = /version (\d+\.\d+)/.exec(r.stdout.toString());
  return m ? `QEMU ${m[1]} microvm` : "QEMU microvm";
}

/** A remark when dist/bunvmm is older than a source file it was built from. */
export function binStale(): string | null {
  if (!existsSync(BIN)) return null;
  const built = statSync(BIN).mtimeMs;
  const newer = ["src", "devices", "ffi"]
    .filter((d) => existsSync(join(REPO, d)))
    .flatMap((dir) =>
      readdirSync(join(REPO, dir), { recursive: true, encoding: "utf8" })
        .map((f) => join(dir, f))
        .filter((f) => f.endsWith(".ts") && statSync(join(REPO, f)).mtimeMs > built),
    );
  return newer.length
    ? `dist/bunvmm is older than ${newer.length} source file(s) (e.g. ${newer[0]}); \`npm run build\` rebuilds it`
    : null;
}
