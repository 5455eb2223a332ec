/**
 * Per-vCPU CPUID (Intel SDM Vol. 2A, CPUID; AMD APM Vol. 3, Appendix E): KVM's supported leaves with
 * this vCPU's APIC id where a guest reads it, a topology that agrees with the VM's max_vcpus, the
 * hypervisor bit, and the features the user asked to hide taken out.
 *
 * Topology: every vCPU is a core of one package, one thread per core, `maxVcpus` cores (crosvm's and
 * cloud-hypervisor's default shape). APIC ids are the vCPU indices, so the core field of an APIC id
 * is ceil(log2(maxVcpus)) bits wide. Leaves written:
 *   1          EBX[31:24] APIC id, EBX[23:16] addressable ids in the package, EDX.HTT when > 1 vCPU
 *   4          EAX[31:26] cores − 1, EAX[25:14] sharing − 1 (L1/L2 per core, L3 the package); Intel
 *   0xB, 0x1F  subleaf 0 SMT (1 thread), subleaf 1 core (maxVcpus), subleaf 2 invalid; EDX = x2APIC id
 *              (0xB is inserted when the max basic leaf reaches it; 0x1F only rewritten if KVM has it)
 *   0x80000008 ECX NC = cores − 1 and ApicIdSize; AMD only
 *   0x8000001D EAX[25:14] sharing − 1, like leaf 4; AMD only
 *   0x8000001E EAX extended APIC id, EBX core id (threads per core 1), ECX node 0; AMD only
 * The hypervisor leaves (0x40000000 "KVMKVMKVM", 0x40000001 features) pass through untouched.
 */
import { BunvmmError } from "../../errors.ts";
import { type CpuidEntry, CpuidTable } from "../../kvm/cpuid-table.ts";

const LEAF_VENDOR = 0x0;
const LEAF_FEATURES = 0x1;
const LEAF_CACHE_PARAMS = 0x4;
const LEAF_STRUCTURED_FEATURES = 0x7;
const LEAF_EXT_TOPOLOGY = 0xb;
const LEAF_XSAVE = 0xd;
const LEAF_V2_EXT_TOPOLOGY = 0x1f;
const LEAF_AMD_ADDRESS_SIZES = 0x8000_0008;
const LEAF_AMD_CACHE_TOPOLOGY = 0x8000_001d;
const LEAF_AMD_EXT_APIC_ID = 0x8000_001e;

const INITIAL_APIC_ID_SHIFT = 24;
const INITIAL_APIC_ID_MASK = 0xff << INITIAL_APIC_ID_SHIFT;
const LOGICAL_COUNT_SHIFT = 16;
const LOGICAL_COUNT_MASK = 0xff << LOGICAL_COUNT_SHIFT;
/** Leaf 1 EDX bit 28: the logical-count field of EBX is valid. */
const EDX_HTT = 1 << 28;
/** Leaf 1 ECX bit 31: running under a hypervisor. */
const ECX_HYPERVISOR = 1 << 31;

/** Leaf 4 / 0x8000001D EAX fields. */
const CACHE_TYPE_MASK = 0x1f;
const CACHE_LEVEL_SHIFT = 5;
const CACHE_LEVEL_MASK = 0x7;
const CACHE_SHARING_SHIFT = 14;
const CACHE_SHARING_MASK = 0xfff << CACHE_SHARING_SHIFT;
const CACHE_CORES_SHIFT = 26;
const CACHE_CORES_MASK = 0x3f << CACHE_CORES_SHIFT;

/** Leaf 0xB/0x1F ECX[15:8] level types. */
const LEVEL_TYPE_INVALID = 0;
const LEVEL_TYPE_SMT = 1;
const LEVEL_TYPE_CORE = 2;
/** kvm_cpuid_entry2.flags: the subleaf index matters (<linux/kvm.h> KVM_CPUID_FLAG_SIGNIFCANT_INDEX). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

/** 0x80000008 ECX: NC (bits 7:0) and ApicIdSize (bits 15:12). */
const AMD_NC_MASK = 0xff;
const AMD_APIC_ID_SIZE_SHIFT = 12;
const AMD_APIC_ID_SIZE_MASK = 0xf << AMD_APIC_ID_SIZE_SHIFT;

/** Leaf 0 EBX of AMD's "AuthenticAMD" and Hygon's "HygonGenuine". */
const VENDOR_EBX_AMD = 0x6874_7541;
const VENDOR_EBX_HYGON = 0x6f67_7948;

type Reg = "eax" | "ebx" | "ecx" | "edx";

interface FeatureBit {
  readonly leaf: number;
  readonly subleaf: number;
  readonly reg: Reg;
  readonly bit: number;
}

interface CpuFeature {
  readonly description: string;
  readonly bits: readonly FeatureBit[];
  /** Leaves removed along with the bits (their contents describe the hidden feature). */
  readonly removeLeaves?: readonly number[];
}

/**
 * Features that can be hidden from the guest, by the names Linux uses in /proc/cpuinfo and
 * `clearcpuid=`. Linux itself drops what depends on a hidden feature (AVX without XSAVE, …).
 */
export const CPU_FEATURES: Readonly<Record<string, CpuFeature>> = {
  cx16: { description: "CMPXCHG16B", bits: [{ leaf: LEAF_FEATURES, subleaf: 0, reg: "ecx", bit: 13 }] },
  xsave: {
    description: "XSAVE/XRSTOR and XCR0 (with OSXSAVE; leaf 0xD removed)",
    bits: [
      { leaf: LEAF_FEATURES, subleaf: 0, reg: "ecx", bit: 26 },
      { leaf: LEAF_FEATURES, subleaf: 0, reg: "ecx", bit: 27 },
    ],
    removeLeaves: [LEAF_XSAVE],
  },
  avx: { description: "AVX", bits: [{ leaf: LEAF_FEATURES, subleaf: 0, reg: "ecx", bit: 28 }] },
  avx2: { description: "AVX2", bits: [{ leaf: LEAF_STRUCTURED_FEATURES, subleaf: 0, reg: "ebx", bit: 5 }] },
  x2apic: { description: "x2APIC mode", bits: [{ leaf: LEAF_FEATURES, subleaf: 0, reg: "ecx", bit: 21 }] },
};

/** A feature name that CPU_FEATURES does not know: names the known ones. */
export class UnknownCpuFeatureError extends BunvmmError {
  override readonly name = "UnknownCpuFeatureError";
  constructor(
    readonly feature: string,
    readonly known: readonly string[],
  ) {
    super(
      "input",
      `unknown CPU feature ${JSON.stringify(feature)} to hide; known features: ${known.join(", ")}`,
    );
  }
}

/** Checks feature names early (config validation). @throws {UnknownCpuFeatureError} for the first unknown one. */
export function checkCpuFeatureNames(names: readonly string[]): void {
  for (const name of names) {
    if (!Object.hasOwn(CPU_FEATURES, name))
      throw new UnknownCpuFeatureError(name, Object.keys(CPU_FEATURES).sort());
  }
}

export interface VcpuCpuidOptions {
  /** The VM's max_vcpus: the package's core count in the topology leaves. Omitted: topology untouched. */
  readonly maxVcpus?: number;
  /** Names from CPU_FEATURES to hide. */
  readonly hide?: readonly string[];
}

/** Bits needed for ids 0..count−1 (0 for one). */
function idBits(count: number): number {
  return count <= 1 ? 0 : 32 - Math.clz32(count - 1);
}

/** True on AMD and Hygon hosts (CPUID leaf 0 vendor), whose topology leaves and MSRs differ. */
export function isAmdLike(table: CpuidTable): boolean {
  const ebx = table.leaf(LEAF_VENDOR)[0]?.ebx;
  return ebx === VENDOR_EBX_AMD || ebx === VENDOR_EBX_HYGON;
}

/** EAX[25:14] of a cache leaf: caches of level ≥ 3 are shared by the package, the rest by one core. */
function withCacheSharing(eax: number, packageIds: number): number {
  const level = (eax >>> CACHE_LEVEL_SHIFT) & CACHE_LEVEL_MASK;
  const sharing = level >= 3 ? Math.min(packageIds - 1, 0xfff) : 0;
  return (eax & ~CACHE_SHARING_MASK) | (sharing << CACHE_SHARING_SHIFT);
}

/** Subleaves 0 (SMT), 1 (core), 2 (invalid, ends the enumeration) of leaf 0xB or 0x1F. */
function topologyLeaf(fn: number, apicId: number, maxVcpus: number): CpuidEntry[] {
  const flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  return [
    { function: fn, index: 0, flags, eax: 0, ebx: 1, ecx: (LEVEL_TYPE_SMT << 8) | 0, edx: apicId },
    {
      function: fn,
      index: 1,
      flags,
      eax: idBits(maxVcpus),
      ebx: maxVcpus,
      ecx: (LEVEL_TYPE_CORE << 8) | 1,
      edx: apicId,
    },
    { function: fn, index: 2, flags, eax: 0, ebx: 0, ecx: (LEVEL_TYPE_INVALID << 8) | 2, edx: apicId },
  ];
}

function applyTopology(
  entries: CpuidEntry[],
  table: CpuidTable,
  apicId: number,
  maxVcpus: number,
): CpuidEntry[] {
  const bits = idBits(maxVcpus);
  const packageIds = 1 << bits;
  const amd = isAmdLike(table);
  for (const e of entries) {
    switch (e.function) {
      case LEAF_FEATURES:
        e.ebx = (e.ebx & ~LOGICAL_COUNT_MASK) | (Math.min(packageIds, 0xff) << LOGICAL_COUNT_SHIFT);
        e.edx = maxVcpus > 1 ? e.edx | EDX_HTT : e.edx & ~EDX_HTT;
        break;
      case LEAF_CACHE_PARAMS:
        if ((e.eax & CACHE_TYPE_MASK) === 0) break; // no cache described (AMD reports zeros)
        e.eax = withCacheSharing(e.eax, packageIds);
        e.eax = (e.eax & ~CACHE_CORES_MASK) | (Math.min(packageIds - 1, 0x3f) << CACHE_CORES_SHIFT);
        break;
      case LEAF_AMD_ADDRESS_SIZES:
        if (!amd) break;
        e.ecx =
          (e.ecx & ~(AMD_NC_MASK | AMD_APIC_ID_SIZE_MASK)) |
          (maxVcpus - 1) |
          (bits << AMD_APIC_ID_SIZE_SHIFT);
        break;
      case LEAF_AMD_CACHE_TOPOLOGY:
        if (!amd || (e.eax & CACHE_TYPE_MASK) === 0) break;
        e.eax = withCacheSharing(e.eax, packageIds);
        break;
      case LEAF_AMD_EXT_APIC_ID:
        if (!amd) break;
        e.eax = apicId;
        e.ebx = apicId & 0xff; // core id; bits 15:8 threads per core − 1 = 0
        e.ecx = 0; // node 0, one node per package
        break;
    }
  }
  const maxBasic = table.leaf(LEAF_VENDOR)[0]?.eax ?? 0;
  const rewrite = [LEAF_EXT_TOPOLOGY, LEAF_V2_EXT_TOPOLOGY].filter(
    (fn) => table.leaf(fn).length > 0 || (fn === LEAF_EXT_TOPOLOGY && maxBasic >= LEAF_EXT_TOPOLOGY),
  );
  const kept = entries.filter((e) => !rewrite.includes(e.function));
  return [...kept, ...rewrite.flatMap((fn) => topologyLeaf(fn, apicId, maxVcpus))];
}

function hideFeatures(entries: CpuidEntry[], names: readonly string[]): CpuidEntry[] {
  checkCpuFeatureNames(names);
  const remove = new Set<number>();
  for (const name of names) {
    const feature = CPU_FEATURES[name]!;
    for (const b of feature.bits) {
      for (const e of entries) {
        if (e.function === b.leaf && e.index === b.subleaf) e[b.reg] = (e[b.reg] & ~(1 << b.bit)) >>> 0;
      }
    }
    for (const leaf of feature.removeLeaves ?? []) remove.add(leaf);
  }
  return entries.filter((e) => !remove.has(e.function));
}

/**
 * A copy of `supported` for the vCPU with APIC id `apicId`: its id in leaf 1 and the topology leaves,
 * the hypervisor bit set, and with `maxVcpus` the whole topology of the header comment.
 * @throws {UnknownCpuFeatureError} when `hide` names a feature CPU_FEATURES does not know.
 */
export function cpuidForVcpu(
  supported: CpuidTable,
  apicId: number,
  options: VcpuCpuidOptions = {},
): CpuidTable {
  let entries = supported.clone().entries;
  for (const e of entries) {
    if (e.function === LEAF_FEATURES) {
      e.ebx = (e.ebx & ~INITIAL_APIC_ID_MASK) | ((apicId & 0xff) << INITIAL_APIC_ID_SHIFT);
      e.ecx = (e.ecx | ECX_HYPERVISOR) >>> 0;
    } else if (e.function === LEAF_EXT_TOPOLOGY || e.function === LEAF_V2_EXT_TOPOLOGY) {
      e.edx = apicId;
    }
  }
  if (options.maxVcpus !== undefined) entries = applyTopology(entries, supported, apicId, options.maxVcpus);
  if (options.hide) entries = hideFeatures(entries, options.hide);
  for (const e of entries) for (const r of ["eax", "ebx", "ecx", "edx"] as const) e[r] >>>= 0;
  return new CpuidTable(entries);
}
