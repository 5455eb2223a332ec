/**
 * Per-vCPU CPUID (Intel SDM Vol. 2A, CPUID): KVM's supported leaves with this vCPU's APIC id where a
 * guest reads it. Topology and feature hiding grow here.
 */
import type { CpuidTable } from "../../kvm/cpuid-table.ts";

const LEAF_FEATURES = 0x1;
const LEAF_EXT_TOPOLOGY = 0xb;
const LEAF_V2_EXT_TOPOLOGY = 0x1f;
const INITIAL_APIC_ID_SHIFT = 24;
const INITIAL_APIC_ID_MASK = 0xff << INITIAL_APIC_ID_SHIFT;

/** A copy of `supported` in which CPUID tells vCPU `apicId` its own APIC id. */
export function cpuidForVcpu(supported: CpuidTable, apicId: number): CpuidTable {
  const table = supported.clone();
  for (const e of table.entries) {
    if (e.function === LEAF_FEATURES) {
      e.ebx = (e.ebx & ~INITIAL_APIC_ID_MASK) | ((apicId & 0xff) << INITIAL_APIC_ID_SHIFT);
    } else if (e.function === LEAF_EXT_TOPOLOGY || e.function === LEAF_V2_EXT_TOPOLOGY) {
      e.edx = apicId;
    }
  }
  return table;
}
