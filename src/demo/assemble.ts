/**
 * Builds a raw guest image from GNU assembler source with binutils (as, ld), the way test guests and
 * the built-in demo are made: `.code32` at RAW_LOAD_ADDRESS, flat binary out.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { RAW_LOAD_ADDRESS } from "../arch/x86_64/layout.ts";

/** Where `.include "platform.inc"` and "smp.inc" are found (guests in test/guests use them too). */
export const GUEST_INCLUDE_DIR = import.meta.dir;

/** An assembler or linker failure, with its output. */
export class AssembleError extends Error {
  override readonly name = "AssembleError";
}

function run(cmd: string[]): void {
  const p = Bun.spawnSync(cmd, { stderr: "pipe", stdout: "pipe" });
  if (p.exitCode !== 0) {
    throw new AssembleError(
      `${cmd[0]} failed (${p.exitCode}): ${p.stderr.toString().trim() || p.stdout.toString().trim()}`,
    );
  }
}

/**
 * Assembles `source` (a .S path) into a flat image linked at RAW_LOAD_ADDRESS. `defines` become
 * `--defsym NAME=VALUE`. The entry symbol is the first byte of .text.
 */
export function assembleRawGuest(source: string, defines: Record<string, number> = {}): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-guest-"));
  try {
    const obj = join(dir, `${basename(source)}.o`);
    const bin = join(dir, `${basename(source)}.bin`);
    const syms = Object.entries(defines).flatMap(([k, v]) => ["--defsym", `${k}=${v}`]);
    run(["as", "--32", "-I", GUEST_INCLUDE_DIR, "-I", dirname(source), ...syms, "-o", obj, source]);
    run([
      "ld",
      "-m",
      "elf_i386",
      `-Ttext=0x${RAW_LOAD_ADDRESS.toString(16)}`,
      "-e",
      `0x${RAW_LOAD_ADDRESS.toString(16)}`,
      "--oformat",
      "binary",
      "-o",
      bin,
      obj,
    ]);
    return new Uint8Array(readFileSync(bin));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
