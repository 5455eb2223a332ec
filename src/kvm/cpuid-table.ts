/** A list of kvm_cpuid_entry2, as KVM_GET_SUPPORTED_CPUID returns and KVM_SET_CPUID2 takes. */
import { KVM_CPUID_ENTRY2_LAYOUT, KVM_CPUID2_LAYOUT } from "../../ffi/kvm-structs.ts";

export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

const E = KVM_CPUID_ENTRY2_LAYOUT.fields;
const REGS = ["function", "index", "flags", "eax", "ebx", "ecx", "edx"] as const;

/** Plain data so a table can be copied per vCPU and patched (APIC ids) before KVM_SET_CPUID2. */
export class CpuidTable {
  constructor(readonly entries: CpuidEntry[]) {}

  static fromKvmCpuid2(buf: Uint8Array): CpuidTable {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const nent = view.getUint32(KVM_CPUID2_LAYOUT.fields.nent.offset, true);
    const entries: CpuidEntry[] = [];
    for (let i = 0; i < nent; i++) {
      const base = KVM_CPUID2_LAYOUT.fields.entries.offset + i * KVM_CPUID_ENTRY2_LAYOUT.size;
      const e = {} as CpuidEntry;
      for (const r of REGS) e[r] = view.getUint32(base + E[r].offset, true);
      entries.push(e);
    }
    return new CpuidTable(entries);
  }

  /** Serialises to struct kvm_cpuid2 with its entries. */
  toKvmCpuid2(): Uint8Array {
    const buf = new Uint8Array(KVM_CPUID2_LAYOUT.size + this.entries.length * KVM_CPUID_ENTRY2_LAYOUT.size);
    const view = new DataView(buf.buffer);
    view.setUint32(KVM_CPUID2_LAYOUT.fields.nent.offset, this.entries.length, true);
    this.entries.forEach((e, i) => {
      const base = KVM_CPUID2_LAYOUT.fields.entries.offset + i * KVM_CPUID_ENTRY2_LAYOUT.size;
      for (const r of REGS) view.setUint32(base + E[r].offset, e[r] >>> 0, true);
    });
    return buf;
  }

  /** Entries for a leaf (all subleaves). */
  leaf(fn: number): CpuidEntry[] {
    return this.entries.filter((e) => e.function === fn);
  }

  clone(): CpuidTable {
    return new CpuidTable(this.entries.map((e) => ({ ...e })));
  }
}
