/** Per-vCPU CPUID: APIC ids, topology for max_vcpus, hidden features; and KVM accepting the result. */
import { describe, expect, test } from "bun:test";
import {
  CPU_FEATURES,
  checkCpuFeatureNames,
  cpuidForVcpu,
  UnknownCpuFeatureError,
} from "../../../src/arch/x86_64/cpuid.ts";
import { type CpuidEntry, CpuidTable } from "../../../src/kvm/cpuid-table.ts";
import { Kvm } from "../../../src/kvm/kvm.ts";
import { VcpuFd } from "../../../src/kvm/vcpu-fd.ts";
import { VmFd } from "../../../src/kvm/vm-fd.ts";

const e = (
  fn: number,
  index: number,
  eax: number,
  ebx: number,
  ecx: number,
  edx: number,
  flags = 0,
): CpuidEntry => ({
  function: fn,
  index,
  flags,
  eax,
  ebx,
  ecx,
  edx,
});
const GENU = 0x756e_6547; // "Genu"
const AUTH = 0x6874_7541; // "Auth"

/** Leaves shaped like an Intel host's: L1d/L1i/L2/L3 in leaf 4, leaf 0xB and 0x1F, leaf 0xD. */
function intelTable(): CpuidTable {
  return new CpuidTable([
    e(0, 0, 0x1f, GENU, 0x6c65_746e, 0x4965_6e69),
    e(1, 0, 0x906ea, 0x0010_0800, 0x7ffa_fbff, 0xbfeb_fbff),
    e(4, 0, 0x1c00_4121, 0x01c0_003f, 0x3f, 0, 1), // L1d: level 1, type 1
    e(4, 1, 0x1c00_4122, 0x01c0_003f, 0x3f, 0, 1), // L1i
    e(4, 2, 0x1c00_4143, 0x00c0_003f, 0x3ff, 0, 1), // L2
    e(4, 3, 0x1c03_c163, 0x02c0_003f, 0x3fff, 6, 1), // L3, shared by 16
    e(4, 4, 0, 0, 0, 0, 1),
    e(7, 0, 0, 0x029c_6fbf, 0, 0, 1),
    e(0xb, 0, 1, 2, 0x100, 0, 1),
    e(0xb, 1, 4, 16, 0x201, 0, 1),
    e(0xd, 0, 0x7, 0x340, 0x340, 0, 1),
    e(0xd, 1, 0xf, 0x340, 0, 0, 1),
    e(0x1f, 0, 1, 2, 0x100, 0, 1),
    e(0x1f, 1, 4, 16, 0x201, 0, 1),
    e(0x4000_0000, 0, 0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
    e(0x4000_0001, 0, 0x0100_7efb, 0, 0, 0),
    e(0x8000_0000, 0, 0x8000_0008, 0, 0, 0),
    e(0x8000_0008, 0, 0x3030, 0, 0, 0),
  ]);
}

/** Leaves shaped like this project's AMD EPYC host (KVM_GET_SUPPORTED_CPUID here). */
function amdTable(): CpuidTable {
  return new CpuidTable([
    e(0, 0, 0x1c, AUTH, 0x444d_4163, 0x6974_6e65),
    e(1, 0, 0xa10f11, 0x0002_0800, 0x8120_2000, 0x078b_fbff),
    e(4, 0, 0, 0, 0, 0, 1),
    e(0xb, 0, 0, 0, 0, 0, 1),
    e(0xd, 0, 0xe7, 0x980, 0x980, 0, 1),
    e(0x4000_0000, 0, 0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d),
    e(0x8000_0008, 0, 0x3030, 0x5002_0005, 0x7001, 0),
    e(0x8000_001d, 0, 0x121, 0x01c0_003f, 0x3f, 0, 1),
    e(0x8000_001d, 3, 0x4163, 0x03c0_003f, 0x7fff, 1, 1),
    e(0x8000_001e, 0, 0, 0, 0, 0),
  ]);
}

const get = (t: CpuidTable, fn: number, index = 0) =>
  t.entries.find((x) => x.function === fn && x.index === index)!;

describe("cpuidForVcpu()", () => {
  test("without options: only this vCPU's APIC id and the hypervisor bit change", () => {
    const t = cpuidForVcpu(intelTable(), 5);
    expect(get(t, 1).ebx >>> 24).toBe(5);
    expect((get(t, 1).ecx >>> 31) & 1).toBe(1);
    expect(get(t, 0xb, 1).edx).toBe(5);
    expect(get(t, 4, 3)).toEqual(get(intelTable(), 4, 3));
  });

  test("leaves the supported table untouched", () => {
    const supported = intelTable();
    cpuidForVcpu(supported, 3, { maxVcpus: 8, hide: ["xsave"] });
    expect(supported).toEqual(intelTable());
  });

  test.each([
    [1, 0, 1, 0],
    [2, 1, 2, 1],
    [3, 2, 4, 1],
    [8, 3, 8, 1],
    [9, 4, 16, 1],
    [255, 8, 255, 1],
  ])("maxVcpus %i: core-level shift %i, leaf 1 count %i, HTT %i", (maxVcpus, shift, count, htt) => {
    const t = cpuidForVcpu(intelTable(), 0, { maxVcpus });
    expect((get(t, 1).ebx >>> 16) & 0xff).toBe(count);
    expect((get(t, 1).edx >>> 28) & 1).toBe(htt);
    expect(get(t, 0xb, 1).eax).toBe(shift);
  });

  test("leaf 0xB and 0x1F: one thread per core, max_vcpus cores, then the invalid level", () => {
    const t = cpuidForVcpu(intelTable(), 6, { maxVcpus: 8 });
    for (const fn of [0xb, 0x1f]) {
      expect(t.leaf(fn)).toEqual([
        e(fn, 0, 0, 1, 0x100, 6, 1), // SMT level: shift 0, 1 logical processor
        e(fn, 1, 3, 8, 0x201, 6, 1), // core level: shift 3, 8 logical processors
        e(fn, 2, 0, 0, 0x002, 6, 1), // level type 0 ends the enumeration
      ]);
    }
  });

  test("leaf 4: cores per package in EAX[31:26]; L1/L2 per core, L3 per package in EAX[25:14]", () => {
    const t = cpuidForVcpu(intelTable(), 0, { maxVcpus: 4 });
    const fields = t.leaf(4).map((x) => [x.index, x.eax >>> 26, (x.eax >>> 14) & 0xfff, x.eax & 0x3fff]);
    expect(fields).toEqual([
      [0, 3, 0, 0x0121],
      [1, 3, 0, 0x0122],
      [2, 3, 0, 0x0143],
      [3, 3, 3, 0x0163],
      [4, 0, 0, 0], // no cache: untouched
    ]);
  });

  test("AMD: 0xB inserted in place of KVM's empty one, 0x80000008 NC/ApicIdSize, 0x8000001D, 0x8000001E", () => {
    const t = cpuidForVcpu(amdTable(), 3, { maxVcpus: 4 });
    expect(t.leaf(0xb).map((x) => [x.index, x.eax, x.ebx, x.ecx, x.edx])).toEqual([
      [0, 0, 1, 0x100, 3],
      [1, 2, 4, 0x201, 3],
      [2, 0, 0, 0x2, 3],
    ]);
    expect(t.leaf(0x1f)).toEqual([]); // not offered by KVM: not invented
    expect(get(t, 0x8000_0008).ecx).toBe(0x2003); // ApicIdSize 2, NC 3
    expect(t.leaf(0x8000_001d).map((x) => (x.eax >>> 14) & 0xfff)).toEqual([0, 3]);
    expect(get(t, 0x8000_001e)).toEqual(e(0x8000_001e, 0, 3, 3, 0, 0));
    expect(get(t, 4)).toEqual(e(4, 0, 0, 0, 0, 0, 1)); // AMD's zeroed leaf 4 stays zero
  });

  test("Intel: the AMD-only leaves are not rewritten", () => {
    expect(get(cpuidForVcpu(intelTable(), 0, { maxVcpus: 4 }), 0x8000_0008).ecx).toBe(0);
  });

  test("the hypervisor leaves pass through", () => {
    for (const table of [intelTable(), amdTable()]) {
      const t = cpuidForVcpu(table, 1, { maxVcpus: 2, hide: ["xsave", "cx16"] });
      expect(t.leaf(0x4000_0000)).toEqual(table.leaf(0x4000_0000));
      expect(get(t, 0x4000_0000).ebx).toBe(0x4b4d_564b); // "KVMK"
    }
  });
});

describe("hiding features", () => {
  test('"cx16" clears leaf 1 ECX bit 13', () => {
    const t = cpuidForVcpu(intelTable(), 0, { hide: ["cx16"] });
    expect(get(t, 1).ecx & (1 << 13)).toBe(0);
    expect(get(t, 1).ecx).toBe(((get(intelTable(), 1).ecx & ~(1 << 13)) | 0x8000_0000) >>> 0); // the rest as KVM gave it
  });

  test('"xsave" clears XSAVE and OSXSAVE and removes leaf 0xD', () => {
    const t = cpuidForVcpu(intelTable(), 0, { hide: ["xsave"] });
    expect(get(t, 1).ecx & (3 << 26)).toBe(0);
    expect(t.leaf(0xd)).toEqual([]);
  });

  test('"avx2" clears leaf 7 EBX bit 5', () => {
    const t = cpuidForVcpu(intelTable(), 0, { hide: ["avx2"] });
    expect(get(t, 7).ebx & (1 << 5)).toBe(0);
  });

  test("an unknown name throws, listing the known ones", () => {
    expect(() => cpuidForVcpu(intelTable(), 0, { hide: ["cx16", "sse9"] })).toThrow(
      new UnknownCpuFeatureError("sse9", ["avx", "avx2", "cx16", "x2apic", "xsave"]),
    );
    expect(() => checkCpuFeatureNames(["toString"])).toThrow(
      'unknown CPU feature "toString" to hide; known features: avx, avx2, cx16, x2apic, xsave',
    );
    expect(Object.keys(CPU_FEATURES).sort()).toEqual(["avx", "avx2", "cx16", "x2apic", "xsave"]);
  });
});

describe("cpuidForVcpu() on real KVM", () => {
  test("KVM_SET_CPUID2 accepts the table with topology and hidden features for every vCPU", () => {
    const kvm = Kvm.open();
    const vm = new VmFd(kvm.createVm());
    try {
      vm.createIrqchip();
      const supported = kvm.getSupportedCpuid();
      for (let i = 0; i < 3; i++) {
        const vcpu = new VcpuFd(vm.createVcpu(i));
        const table = cpuidForVcpu(supported, i, { maxVcpus: 3, hide: ["cx16", "xsave"] });
        vcpu.setCpuid2(table);
        expect(get(table, 1).ebx >>> 24).toBe(i);
        expect(get(table, 0xb, 0).edx).toBe(i);
        vcpu.close();
      }
    } finally {
      vm.close();
      kvm.close();
    }
  });
});
