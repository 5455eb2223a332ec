/**
 * Writes a paused VM's snapshot (src/snapshot/format.ts): the vCPUs read their own state in the park
 * (src/vmm/cpu-manager.ts saveStates), the VMM thread reads the irqchip, PIT and clock (VM ioctls) and
 * each device's state (DeviceType.save: no worker runs a device while the VM is paused), then guest RAM
 * goes to a sparse file. Everything lands in a temporary directory beside the destination, fsynced, and
 * is renamed into place last: a crash mid-write leaves only a `.partial` directory, never a snapshot.
 *
 * Threads: VMM thread. The file writes are synchronous (the VM is paused; nothing else waits on the
 * thread but the API, which answers when the snapshot is done).
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type { ConsolaInstance } from "consola/core";
import { deviceTypeOf } from "../../devices/registry.ts";
import { KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE } from "../../ffi/kvm-structs.ts";
import packageJson from "../../package.json" with { type: "json" };
import type { VmConfig } from "../config/index.ts";
import type { Machine } from "../vmm/builder.ts";
import {
  CHECKSUM_ALGORITHM,
  CONFIG_FILE,
  checksum,
  cpuVendor,
  diskImageEntry,
  type FileEntry,
  MANIFEST_FILE,
  type Manifest,
  MEMORY_FILE,
  SNAPSHOT_FORMAT,
  SNAPSHOT_FORMAT_VERSION,
  STATE_FILE,
  type StateJson,
} from "./format.ts";
import { type MemoryFileStats, writeMemoryFile } from "./memory-file.ts";
import { SnapshotError } from "./snapshot-error.ts";
import { vcpuStateToJson } from "./vcpu-state.ts";

/** Log a progress line at most this often while writing guest RAM (bytes of RAM between lines). */
const PROGRESS_STEP_BYTES = 256 << 20;

/** What the writer reads from a paused VM. */
export interface SnapshotSource {
  readonly config: VmConfig;
  readonly presentVcpus: number;
  readonly machine: Machine;
  readonly timeoutMs: number;
  readonly log: ConsolaInstance;
}

export interface SnapshotStats {
  readonly dir: string;
  readonly vcpus: number;
  readonly memory: MemoryFileStats;
  readonly ms: number;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

/** A destination that is free: absent, or an empty directory (rename(2) replaces an empty one). */
function checkDestination(dir: string): void {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(dir);
  } catch {
    return;
  }
  if (!st.isDirectory()) throw new SnapshotError(`snapshot destination ${dir} exists and is not a directory`);
  if (readdirSync(dir).length > 0) throw new SnapshotError(`snapshot destination ${dir} is not empty`);
}

/** Writes `bytes` to `path` and fsyncs it; returns its manifest entry. */
function writeDurable(path: string, bytes: Uint8Array): FileEntry {
  writeFileSync(path, bytes);
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { bytes: bytes.length, checksum: checksum(bytes) };
}

/**
 * Snapshots the paused VM into `dir` (absent or empty). @throws {SnapshotError} for a destination in
 * use, the fs error naming the path for a host failure (ENOSPC, EACCES), {VcpuTimeoutError} when a vCPU
 * did not serve the save in time. On any failure nothing is left at `dir` and the VM stays paused.
 */
export async function writeSnapshot(destination: string, src: SnapshotSource): Promise<SnapshotStats> {
  const started = performance.now();
  const dir = resolve(destination);
  checkDestination(dir);
  const { machine, log } = src;
  // Device state is read from the shared words the device workers write: only while every one of them
  // is parked between requests (the VM is Paused, and a pause parks the device workers after the vCPUs).
  const running = Object.entries(machine.devices.workers.runStates()).filter(([, s]) => s !== "PARKED");
  if (running.length > 0) {
    throw new SnapshotError(
      `snapshot ${dir}: ${running.map(([label, s]) => `${label} is ${s}`).join(", ")}; only a VM whose device workers are all parked can be snapshotted`,
    );
  }
  const vcpus = await machine.cpus.saveStates(src.timeoutMs);

  const vm = machine.vm;
  const state: StateJson = {
    present_vcpus: src.presentVcpus,
    created_vcpus: machine.cpus.created,
    vcpus: vcpus.map(vcpuStateToJson),
    cpuid: Object.fromEntries(vcpus.map((v) => [String(v.index), machine.cpuid(v.index).entries])),
    vm: {
      pic_master: b64(vm.getIrqchip(KVM_IRQCHIP_PIC_MASTER)),
      pic_slave: b64(vm.getIrqchip(KVM_IRQCHIP_PIC_SLAVE)),
      ioapic: b64(vm.getIrqchip(KVM_IRQCHIP_IOAPIC)),
      pit2: b64(vm.getPit2()),
      clock: b64(vm.getClock()),
    },
    devices: machine.devices.specs.map((spec) => {
      const saved = deviceTypeOf(spec.kind).save(spec);
      return { kind: spec.kind, name: spec.name, version: saved.version, bytes: b64(saved.bytes) };
    }),
  };

  const partial = join(dirname(dir), `.${basename(dir)}.partial-${process.pid}`);
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  let memory: MemoryFileStats;
  try {
    const files: Record<string, FileEntry> = {};
    const encode = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    files[CONFIG_FILE] = writeDurable(join(partial, CONFIG_FILE), encode(src.config));
    files[STATE_FILE] = writeDurable(join(partial, STATE_FILE), encode(state));

    let nextReport = PROGRESS_STEP_BYTES;
    memory = writeMemoryFile(join(partial, MEMORY_FILE), machine.memory, (done, total) => {
      if (done >= nextReport && done < total) {
        log.info(`snapshot: guest RAM ${done >> 20} of ${total >> 20} MiB`);
        nextReport += PROGRESS_STEP_BYTES;
      }
    });
    files[MEMORY_FILE] = { bytes: memory.size, checksum: memory.checksum, extents: memory.extents };

    const manifest: Manifest = {
      format: SNAPSHOT_FORMAT,
      format_version: SNAPSHOT_FORMAT_VERSION,
      bunvmm_version: packageJson.version,
      created: new Date().toISOString(),
      host: { cpu_vendor: cpuVendor(machine.cpuid(0).entries) },
      guest_cpuid: machine.cpuid(0).entries,
      kvm_capabilities: machine.capabilities,
      checksum_algorithm: CHECKSUM_ALGORITHM,
      files,
      // The images are the user's files, left where they are: their size and mtime now, so a restore
      // can refuse one that changed since (the device's saved ring state describes this image).
      disks: src.config.disks.map((d) => diskImageEntry(d.path)),
    };
    writeDurable(join(partial, MANIFEST_FILE), new TextEncoder().encode(JSON.stringify(manifest, null, 1)));
    syncDirectory(partial);
    renameSync(partial, dir);
    syncDirectory(dirname(dir));
  } catch (e) {
    rmSync(partial, { recursive: true, force: true });
    throw e;
  }
  const ms = performance.now() - started;
  log.info(
    `snapshot written to ${dir}: ${vcpus.length} vCPU(s), ${memory.written >> 10} KiB of ${memory.size >> 20} MiB RAM held data, ${ms.toFixed(0)} ms`,
  );
  return { dir, vcpus: vcpus.length, memory, ms };
}

/** fsync on a directory: its entries (the files, the rename) are on disk. */
function syncDirectory(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
