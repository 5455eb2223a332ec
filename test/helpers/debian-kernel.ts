/**
 * A real kernel for the boot-protocol tests: Debian's linux-image-6.1.0-N-cloud-amd64-unsigned (the
 * newest N the archive offers), fetched once with `apt-get download` into .cache/kernels/ under the
 * repo (gitignored) and kept there. Its bzImage is the package's boot/vmlinuz-*; the PVH vmlinux is the
 * bzImage's payload (LZ4 on Debian) decompressed with the `lz4` tool, cached beside it.
 *
 * Never skips: a machine that cannot fetch the package or has no lz4 makes the tests fail with a
 * message saying what to install or fix.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bzImagePayload, parseBzImage } from "../../src/arch/x86_64/bzimage.ts";

const REPO = join(import.meta.dir, "..", "..");
export const KERNEL_CACHE = join(REPO, ".cache", "kernels");
const PACKAGE_PATTERN = /^linux-image-(6\.1\.0-(\d+)-cloud-amd64)-unsigned$/;
/** The kernel build appends the decompressed size (4 bytes, little-endian) after the compressed data. */
const SIZE_TRAILER = 4;

export interface DebianKernel {
  /** "6.1.0-56-cloud-amd64" */
  readonly release: string;
  readonly bzImagePath: string;
  readonly vmlinuxPath: string;
}

function sh(
  argv: string[],
  opts: { cwd?: string; stdin?: Uint8Array } = {},
): { ok: boolean; stdout: Buffer; stderr: string } {
  const p = Bun.spawnSync(argv, { cwd: opts.cwd, stdin: opts.stdin, stdout: "pipe", stderr: "pipe" });
  return { ok: p.exitCode === 0, stdout: p.stdout, stderr: p.stderr.toString().trim() };
}

/** Cached releases, newest first. */
function cachedReleases(): string[] {
  if (!existsSync(KERNEL_CACHE)) return [];
  return readdirSync(KERNEL_CACHE)
    .map((f) => /^vmlinuz-(6\.1\.0-(\d+)-cloud-amd64)$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(b[2]) - Number(a[2]))
    .map((m) => m[1]!);
}

function newestPackage(): { name: string; release: string } | undefined {
  const search = sh([
    "apt-cache",
    "search",
    "--names-only",
    "^linux-image-6\\.1\\.0-[0-9]+-cloud-amd64-unsigned$",
  ]);
  return search.stdout
    .toString()
    .split("\n")
    .map((line) => PACKAGE_PATTERN.exec(line.split(" ")[0] ?? ""))
    .filter((m): m is RegExpExecArray => m !== null)
    .sort((a, b) => Number(b[2]) - Number(a[2]))
    .map((m) => ({ name: m[0], release: m[1]! }))[0];
}

function fetchBzImage(): string {
  let pkg = newestPackage();
  if (!pkg) {
    const update = sh(["apt-get", "update", "-qq"]);
    if (!update.ok) throw new Error(`cannot fetch a test kernel: apt-get update failed: ${update.stderr}`);
    pkg = newestPackage();
  }
  if (!pkg)
    throw new Error(
      "cannot fetch a test kernel: apt-cache knows no linux-image-6.1.0-*-cloud-amd64-unsigned package",
    );
  const work = mkdtempSync(join(tmpdir(), "bunvmm-kernel-"));
  try {
    const download = sh(["apt-get", "download", pkg.name], { cwd: work });
    const deb = readdirSync(work).find((f) => f.endsWith(".deb"));
    if (!download.ok || !deb)
      throw new Error(`cannot fetch a test kernel: apt-get download ${pkg.name} failed: ${download.stderr}`);
    const tar = sh(
      ["sh", "-c", `dpkg-deb --fsys-tarfile '${deb}' | tar -x -O './boot/vmlinuz-${pkg.release}'`],
      { cwd: work },
    );
    if (!tar.ok || tar.stdout.length === 0)
      throw new Error(`cannot unpack boot/vmlinuz-${pkg.release} from ${deb}: ${tar.stderr}`);
    mkdirSync(KERNEL_CACHE, { recursive: true });
    const path = join(KERNEL_CACHE, `vmlinuz-${pkg.release}`);
    writeFileSync(`${path}.part`, tar.stdout);
    renameSync(`${path}.part`, path);
    return pkg.release;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function lz4Available(): boolean {
  return sh(["sh", "-c", "command -v lz4"]).ok;
}

function extractVmlinux(bzImagePath: string, vmlinuxPath: string): void {
  if (!lz4Available()) {
    // The test set-up installs what it needs, like it fetches the kernel (Debian's lz4 package).
    const install = sh(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "lz4"]);
    if (!install.ok || !lz4Available()) {
      throw new Error(
        `the lz4 tool is missing and apt-get install lz4 failed (${install.stderr}): install lz4 to extract the vmlinux`,
      );
    }
  }
  const payload = bzImagePayload(parseBzImage(readFileSync(bzImagePath)));
  const lz4 = sh(["lz4", "-d", "-c"], { stdin: payload.subarray(0, payload.length - SIZE_TRAILER) });
  if (!lz4.ok) throw new Error(`lz4 -d of the bzImage payload failed: ${lz4.stderr}`);
  writeFileSync(`${vmlinuxPath}.part`, lz4.stdout);
  renameSync(`${vmlinuxPath}.part`, vmlinuxPath);
}

let cached: DebianKernel | undefined;

/** The cached Debian kernel, fetched and unpacked on first use. @throws Error saying what failed. */
export function debianKernel(): DebianKernel {
  if (cached) return cached;
  const release = cachedReleases()[0] ?? fetchBzImage();
  const bzImagePath = join(KERNEL_CACHE, `vmlinuz-${release}`);
  const vmlinuxPath = join(KERNEL_CACHE, `vmlinux-${release}`);
  if (!existsSync(vmlinuxPath)) extractVmlinux(bzImagePath, vmlinuxPath);
  cached = { release, bzImagePath, vmlinuxPath };
  return cached;
}
