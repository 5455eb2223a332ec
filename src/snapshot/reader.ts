/**
 * Reads and checks a snapshot directory (src/snapshot/format.ts) before anything is created: every
 * refusal is one line naming the file and what is wrong, and nothing on disk is changed. Checked here:
 * the manifest (present, JSON, this format and version), every file it lists (present, the length the
 * manifest says, config and state checksums), the host (it has every CPU feature the guest saw), and
 * the disk images the config names (present, writable unless read-only, and of the size and mtime the
 * manifest recorded: unchanged since the snapshot). Their locks are taken when the machine is built
 * (the disk device's `connect`), and a locked image is refused there. The memory file's checksum is checked where
 * it is mapped (src/snapshot/restore.ts), over the mapping, so its data is read once.
 *
 * Threads: VMM thread.
 */
import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cpuidForVcpu } from "../arch/x86_64/cpuid.ts";
import type { VmConfig } from "../config/index.ts";
import { Kvm } from "../kvm/kvm.ts";
import {
  CONFIG_FILE,
  checksum,
  cpuVendor,
  type DiskImageEntry,
  diskImageEntry,
  MANIFEST_FILE,
  type Manifest,
  MEMORY_FILE,
  missingFeature,
  SNAPSHOT_FORMAT,
  SNAPSHOT_FORMAT_VERSION,
  STATE_FILE,
  type StateJson,
} from "./format.ts";
import { SnapshotError } from "./snapshot-error.ts";
import { type VcpuState, vcpuStateFromJson } from "./vcpu-state.ts";

/** A checked snapshot, ready to build a machine from. */
export interface SnapshotImage {
  readonly dir: string;
  readonly manifest: Manifest;
  readonly config: VmConfig;
  readonly state: StateJson;
  /** The saved vCPUs by index. */
  readonly vcpus: ReadonlyMap<number, VcpuState>;
}

/** A directory path, or a `file://` URL naming one (cloud-hypervisor's `source_url`). */
export function snapshotPath(source: string): string {
  if (source.startsWith("file://")) return fileURLToPath(source);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    throw new SnapshotError(`snapshot ${source}: only file:// URLs and paths are supported`);
  }
  return resolve(source);
}

function readJson<T>(dir: string, file: string, what: string): T {
  const path = `${dir}/${file}`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new SnapshotError(`snapshot ${dir}: ${file} is missing${what}`);
    throw new SnapshotError(`snapshot ${dir}: cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new SnapshotError(`snapshot ${dir}: ${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** Each file the manifest lists: present, as long as it says, and (for the small ones) its checksum. */
function checkFiles(dir: string, manifest: Manifest): Map<string, Uint8Array> {
  const contents = new Map<string, Uint8Array>();
  for (const file of [CONFIG_FILE, STATE_FILE, MEMORY_FILE]) {
    const entry = manifest.files?.[file];
    if (!entry) throw new SnapshotError(`snapshot ${dir}: the manifest does not list ${file}`);
    const path = `${dir}/${file}`;
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      throw new SnapshotError(`snapshot ${dir}: ${file} is missing`);
    }
    if (size !== entry.bytes) {
      throw new SnapshotError(
        `snapshot ${dir}: ${file} is ${size} bytes; the manifest says ${entry.bytes} (truncated or replaced)`,
      );
    }
    if (file === MEMORY_FILE) continue;
    const bytes = new Uint8Array(readFileSync(path));
    const found = checksum(bytes);
    if (found !== entry.checksum) {
      throw new SnapshotError(
        `snapshot ${dir}: ${file} checksum mismatch (manifest ${entry.checksum}, file ${found}): the file was changed or damaged`,
      );
    }
    contents.set(file, bytes);
  }
  return contents;
}

/**
 * The disk images a config names (the `[[disks]]` tables): present, writable unless read-only, and
 * unchanged since the snapshot (the size and mtime the manifest recorded, when it recorded them).
 */
function checkDiskImages(dir: string, config: VmConfig, manifest: Manifest): void {
  const disks = (config as { disks?: Array<{ path?: string; readonly?: boolean }> }).disks ?? [];
  for (const [i, disk] of disks.entries()) {
    if (typeof disk.path !== "string") continue;
    let now: DiskImageEntry;
    try {
      accessSync(disk.path, disk.readonly ? constants.R_OK : constants.R_OK | constants.W_OK);
      now = diskImageEntry(disk.path);
    } catch (e) {
      throw new SnapshotError(
        `snapshot ${dir}: disk image ${disk.path} the VM needs is not usable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    const then = manifest.disks?.[i];
    if (!then || then.path !== disk.path) continue;
    if (now.bytes !== then.bytes || now.mtime_ns !== then.mtime_ns) {
      const was = new Date(Number(BigInt(then.mtime_ns) / NS_PER_MS)).toISOString();
      const is = new Date(Number(BigInt(now.mtime_ns) / NS_PER_MS)).toISOString();
      throw new SnapshotError(
        `snapshot ${dir}: disk image ${disk.path} changed since the snapshot (${then.bytes} bytes modified ${was}; now ${now.bytes} bytes modified ${is}): restore needs the image as the snapshot left it`,
      );
    }
  }
}

const NS_PER_MS = 1_000_000n;

/** Refuses a host whose KVM cannot give the guest a CPU feature it was using. */
function checkHostCpu(dir: string, manifest: Manifest, config: VmConfig): void {
  const kvm = Kvm.open();
  let host: ReturnType<typeof cpuidForVcpu>;
  try {
    host = cpuidForVcpu(kvm.getSupportedCpuid(), 0, {
      maxVcpus: config.cpus.max_vcpus,
      hide: config.cpus.hide_features,
    });
  } finally {
    kvm.close();
  }
  // The guest chose vendor-specific code paths (and MSRs) at boot: only the same vendor can run it on.
  const vendor = cpuVendor(host.entries);
  if (manifest.host?.cpu_vendor !== vendor) {
    throw new SnapshotError(
      `snapshot ${dir}: taken on a ${manifest.host?.cpu_vendor} host; this host is ${vendor}`,
    );
  }
  const missing = missingFeature(manifest.guest_cpuid ?? [], host.entries);
  if (missing) {
    throw new SnapshotError(
      `snapshot ${dir}: this host lacks a CPU feature the guest saw (${missing}); restore it on a host with the same CPU features`,
    );
  }
}

/**
 * Reads and checks the snapshot at `source` (a directory or a file:// URL). @throws {SnapshotError}
 * with one line for each kind of bad snapshot; nothing has been created or changed when it throws.
 */
export function readSnapshot(source: string): SnapshotImage {
  const dir = snapshotPath(source);
  try {
    if (!statSync(dir).isDirectory()) throw new SnapshotError(`snapshot ${dir} is not a directory`);
  } catch (e) {
    if (e instanceof SnapshotError) throw e;
    throw new SnapshotError(`snapshot ${dir} does not exist`);
  }
  const manifest = readJson<Manifest>(
    dir,
    MANIFEST_FILE,
    " (not a snapshot, or one whose writing did not finish)",
  );
  if (manifest.format !== SNAPSHOT_FORMAT) {
    throw new SnapshotError(`snapshot ${dir}: ${MANIFEST_FILE} is not a bunvmm snapshot manifest`);
  }
  if (manifest.format_version !== SNAPSHOT_FORMAT_VERSION) {
    throw new SnapshotError(
      `snapshot ${dir}: format version ${manifest.format_version}; this bunvmm reads version ${SNAPSHOT_FORMAT_VERSION}`,
    );
  }
  const files = checkFiles(dir, manifest);
  const decode = <T>(file: string) => JSON.parse(new TextDecoder().decode(files.get(file)!)) as T;
  const config = decode<VmConfig>(CONFIG_FILE);
  const state = decode<StateJson>(STATE_FILE);
  checkHostCpu(dir, manifest, config);
  checkDiskImages(dir, config, manifest);
  const vcpus = new Map<number, VcpuState>();
  for (const v of state.vcpus ?? [])
    vcpus.set(v.index, vcpuStateFromJson(v, `snapshot ${dir}: ${STATE_FILE}`));
  if (!vcpus.has(0)) throw new SnapshotError(`snapshot ${dir}: ${STATE_FILE} has no state for vCPU 0`);
  return { dir, manifest, config, state, vcpus };
}
