/** The vCPU counts every ACPI test runs: the main case, the smallest machine, and the largest. */
import type { VcpuCounts } from "../../src/arch/x86_64/acpi/vcpu-counts.ts";

export const VCPU_CASES: readonly (readonly [string, VcpuCounts])[] = [
  ["boot 2 / max 8", { bootVcpus: 2, maxVcpus: 8 }],
  ["boot 1 / max 1", { bootVcpus: 1, maxVcpus: 1 }],
  ["boot 4 / max 255", { bootVcpus: 4, maxVcpus: 255 }],
];
