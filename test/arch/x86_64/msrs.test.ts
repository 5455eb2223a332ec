/** Boot MSRs: the list, and KVM accepting every entry. */
import { describe, expect, test } from "bun:test";
import { cpuidForVcpu, isAmdLike } from "../../../src/arch/x86_64/cpuid.ts";
import {
  bootMsrs,
  describeMsr,
  MSR_IA32_MISC_ENABLE,
  MSR_K7_HWCR,
  MSR_MTRRdefType,
  MSR_STAR,
} from "../../../src/arch/x86_64/msrs.ts";
import { Kvm } from "../../../src/kvm/kvm.ts";
import { VcpuFd } from "../../../src/kvm/vcpu-fd.ts";
import { VmFd } from "../../../src/kvm/vm-fd.ts";

describe("bootMsrs()", () => {
  test("zeroes the SYSENTER/SYSCALL MSRs, KERNEL_GS_BASE and the TSC; fast strings on; MTRRs on, write-back", () => {
    expect(bootMsrs().map(([i, v]) => [i.toString(16), v])).toEqual([
      ["174", 0n], // MSR_IA32_SYSENTER_CS
      ["175", 0n], // MSR_IA32_SYSENTER_ESP
      ["176", 0n], // MSR_IA32_SYSENTER_EIP
      ["c0000081", 0n], // MSR_STAR
      ["c0000083", 0n], // MSR_CSTAR
      ["c0000102", 0n], // MSR_KERNEL_GS_BASE
      ["c0000084", 0n], // MSR_SYSCALL_MASK
      ["c0000082", 0n], // MSR_LSTAR
      ["10", 0n], // MSR_IA32_TSC
      ["1a0", 1n], // MSR_IA32_MISC_ENABLE: FAST_STRING
      ["2ff", 0x806n], // MSR_MTRRdefType: E | WB
    ]);
    expect(new Map(bootMsrs()).get(MSR_IA32_MISC_ENABLE)).toBe(1n);
    expect(new Map(bootMsrs()).get(MSR_MTRRdefType)).toBe((1n << 11n) | 6n);
  });

  test("on AMD hosts it also sets HWCR.TscFreqSel, as firmware does", () => {
    expect(new Map(bootMsrs({ amd: true })).get(MSR_K7_HWCR)).toBe(1n << 24n);
    expect(new Map(bootMsrs()).has(MSR_K7_HWCR)).toBe(false);
  });

  test("describeMsr() names known MSRs", () => {
    expect(describeMsr(MSR_STAR)).toBe("MSR_STAR (0xc0000081)");
    expect(describeMsr(0x3a)).toBe("0x3a");
  });

  test("KVM_SET_MSRS accepts every entry (after KVM_SET_CPUID2)", () => {
    const kvm = Kvm.open();
    const vm = new VmFd(kvm.createVm());
    try {
      vm.createIrqchip();
      const vcpu = new VcpuFd(vm.createVcpu(0));
      vcpu.setCpuid2(cpuidForVcpu(kvm.getSupportedCpuid(), 0, { maxVcpus: 1 }));
      const supported = kvm.getSupportedCpuid();
      const msrs = bootMsrs({ amd: isAmdLike(supported) });
      expect(vcpu.setMsrs(msrs)).toBe(msrs.length);
      vcpu.close();
    } finally {
      vm.close();
      kvm.close();
    }
  });
});
