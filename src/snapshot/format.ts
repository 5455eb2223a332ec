/**
 * The snapshot directory's format, declared once. A snapshot is a directory:
 *
 *   manifest.json  what the rest is: format and version, the bunvmm that wrote it, the host CPU vendor
 *                  and the CPUID the guest saw, the KVM capabilities the VM used, each disk image's
 *                  size and modification time, and for every other file its length and checksum.
 *                  Written last.
 *   config.json    the VM's config, as the user gave it (validated), so a restore needs no TOML.
 *   state.json     the present vCPUs, every vCPU's registers and the rest of its state, the irqchip,
 *                  PIT and clock, and each device's versioned state (struct bytes in base64).
 *   memory.bin     guest RAM, sparse (src/snapshot/memory-file.ts).
 *
 * The writer fills a temporary directory beside the destination and renames it into place when every
 * file is on disk, so a crash mid-write never leaves a directory that looks like a snapshot. The reader
 * refuses, with one line and before anything is created, a missing or truncated file, a checksum that
 * does not match, another format version, a host that lacks a CPU feature the guest saw, and a disk
 * image that is missing or changed since the snapshot.
 *
 * Disk images are the user's files, not part of the snapshot (as in cloud-hypervisor): the restored VM
 * opens and locks the image its config names, which must be exactly as the snapshot left it (the
 * guest's page cache and the device's ring state in the snapshot describe that image). Its size and
 * mtime are recorded, and a restore refuses an image whose size or mtime differs.
 *
 * Checksums are xxHash3-64 (Bun.hash.xxHash3), chained across pieces (each piece's hash seeds the
 * next): they catch a damaged or mixed-up file at memory bandwidth, not a deliberate forgery. For
 * memory.bin the pieces are its data extents, listed in the manifest, so checking it reads only the
 * pages that hold data and never the holes.
 *
 * Threads: VMM thread.
 */
import { statSync } from "node:fs";
import type { CpuidEntry } from "../kvm/cpuid-table.ts";
import type { VcpuStateJson } from "./vcpu-state.ts";

export const SNAPSHOT_FORMAT = "bunvmm-snapshot";
/** Bumped whenever a file's layout changes; a restore refuses any other. */
export const SNAPSHOT_FORMAT_VERSION = 1;
export const CHECKSUM_ALGORITHM = "xxh3-64-chained";

export const MANIFEST_FILE = "manifest.json";
export const CONFIG_FILE = "config.json";
export const STATE_FILE = "state.json";
export const MEMORY_FILE = "memory.bin";

/** One file's entry in the manifest. */
export interface FileEntry {
  bytes: number;
  checksum: string;
  /** memory.bin only: [offset, length] of each run of data; everything else is a hole. */
  extents?: Array<[number, number]>;
}

export interface Manifest {
  format: typeof SNAPSHOT_FORMAT;
  format_version: number;
  bunvmm_version: string;
  created: string;
  host: { cpu_vendor: string };
  /** vCPU 0's CPUID as KVM_SET_CPUID2 was given it: the features the guest may be using. */
  guest_cpuid: CpuidEntry[];
  /** KVM capabilities the VM relied on, with KVM_CHECK_EXTENSION's answers on the saving host. */
  kvm_capabilities: Record<string, number>;
  checksum_algorithm: typeof CHECKSUM_ALGORITHM;
  files: Record<string, FileEntry>;
  /** Each `[[disks]]` image as it was at the snapshot, in config order (absent: a VM without disks). */
  disks?: DiskImageEntry[];
}

/** A disk image as the snapshot found it; a restore refuses one whose size or mtime differs. */
export interface DiskImageEntry {
  path: string;
  bytes: number;
  /** st_mtime in nanoseconds, as a decimal string (too large for a JSON number's precision). */
  mtime_ns: string;
}

/** What the manifest records of the image at `path`. @throws the fs error naming the path. */
export function diskImageEntry(path: string): DiskImageEntry {
  const st = statSync(path, { bigint: true });
  return { path, bytes: Number(st.size), mtime_ns: st.mtimeNs.toString() };
}

/** xxHash3 chained over pieces, each piece's hash the next one's seed. */
export class Checksum {
  private h = 0n;
  add(piece: Uint8Array): void {
    this.h = BigInt.asUintN(64, Bun.hash.xxHash3(piece, this.h));
  }
  /** 16 hex digits. */
  hex(): string {
    return this.h.toString(16).padStart(16, "0");
  }
}

/** The checksum of one piece (a whole small file). */
export function checksum(bytes: Uint8Array): string {
  const c = new Checksum();
  c.add(bytes);
  return c.hex();
}

/** Leaf 0's vendor string ("GenuineIntel", "AuthenticAMD") from a CPUID table. */
export function cpuVendor(entries: readonly CpuidEntry[]): string {
  const leaf0 = entries.find((e) => e.function === 0);
  if (!leaf0) return "unknown";
  const b = Buffer.alloc(12);
  b.writeUInt32LE(leaf0.ebx >>> 0, 0);
  b.writeUInt32LE(leaf0.edx >>> 0, 4);
  b.writeUInt32LE(leaf0.ecx >>> 0, 8);
  return b.toString("latin1");
}

/** The CPUID words that list features a guest may use; a restore needs each saved bit on the host. */
export const FEATURE_WORDS: ReadonlyArray<{
  leaf: number;
  subleaf: number;
  reg: "eax" | "ebx" | "ecx" | "edx";
}> = [
  { leaf: 0x1, subleaf: 0, reg: "ecx" },
  { leaf: 0x1, subleaf: 0, reg: "edx" },
  { leaf: 0x7, subleaf: 0, reg: "ebx" },
  { leaf: 0x7, subleaf: 0, reg: "ecx" },
  { leaf: 0x7, subleaf: 0, reg: "edx" },
  { leaf: 0xd, subleaf: 1, reg: "eax" },
  { leaf: 0x8000_0001, subleaf: 0, reg: "ecx" },
  { leaf: 0x8000_0001, subleaf: 0, reg: "edx" },
];

/** The first feature bit `saved` has and `host` lacks, in words ("CPUID.(EAX=7,ECX=0):EBX bit 5"). */
export function missingFeature(
  saved: readonly CpuidEntry[],
  host: readonly CpuidEntry[],
): string | undefined {
  const word = (
    t: readonly CpuidEntry[],
    leaf: number,
    subleaf: number,
    reg: "eax" | "ebx" | "ecx" | "edx",
  ) =>
    (t.find((e) => e.function === leaf && e.index === subleaf) ??
      t.find((e) => e.function === leaf && subleaf === 0))?.[reg] ?? 0;
  for (const { leaf, subleaf, reg } of FEATURE_WORDS) {
    const lacking = (word(saved, leaf, subleaf, reg) & ~word(host, leaf, subleaf, reg)) >>> 0;
    if (lacking !== 0) {
      const bit = 31 - Math.clz32(lacking & -lacking);
      return `CPUID.(EAX=0x${leaf.toString(16)},ECX=${subleaf}):${reg.toUpperCase()} bit ${bit}`;
    }
  }
  return undefined;
}

/** state.json. Struct bytes are base64; a device's `bytes` are its DeviceType.save bytes. */
export interface StateJson {
  /** The vCPUs the guest was told are present (vm.info's boot_vcpus after resizes). */
  present_vcpus: number;
  /** vCPU slots KVM had created (0 .. n-1), ejected ones included. */
  created_vcpus: number;
  /** Every vCPU whose worker ran: the present ones and any whose removal the guest had not finished. */
  vcpus: VcpuStateJson[];
  /** The CPUID each of those vCPUs was given, by index. */
  cpuid: Record<string, CpuidEntry[]>;
  vm: { pic_master: string; pic_slave: string; ioapic: string; pit2: string; clock: string };
  devices: Array<{ kind: string; name: string; version: number; bytes: string }>;
}
