/**
 * A minimal initramfs for kernel boot tests: one /init script in a newc cpio archive, made with
 * Debian's `cpio` (installed by .ci/run). The early-boot tests only need the kernel to find and place it.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let cached: string | undefined;

/** Path of the archive, built once per test run. @throws Error naming the missing tool. */
export function tinyInitramfs(): string {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-initramfs-"));
  const root = join(dir, "root");
  Bun.spawnSync(["mkdir", "-p", root]);
  writeFileSync(join(root, "init"), "#!/bin/sh\necho bunvmm initramfs\n");
  chmodSync(join(root, "init"), 0o755);
  const out = join(dir, "initramfs.cpio");
  const cpio = Bun.spawnSync(["sh", "-c", `cd ${root} && echo init | cpio -o -H newc > ${out}`], {
    stderr: "pipe",
  });
  if (cpio.exitCode !== 0)
    throw new Error(`cpio failed (apt-get install cpio): ${cpio.stderr.toString().trim()}`);
  if (readFileSync(out).length === 0) throw new Error("cpio wrote an empty archive");
  cached = out;
  return out;
}
