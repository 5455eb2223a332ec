/** LAPIC LINT0/LINT1 delivery modes, on a made-up page and through KVM_GET/SET_LAPIC. */
import { describe, expect, test } from "bun:test";
import {
  APIC_LVT0,
  APIC_LVT1,
  APIC_MODE_EXTINT,
  APIC_MODE_NMI,
  lapicWithLint,
  setDeliveryMode,
} from "../../../src/arch/x86_64/lapic.ts";
import { Kvm } from "../../../src/kvm/kvm.ts";
import { VcpuFd } from "../../../src/kvm/vcpu-fd.ts";
import { VmFd } from "../../../src/kvm/vm-fd.ts";

const u32 = (page: Uint8Array, at: number) => new DataView(page.buffer, page.byteOffset).getUint32(at, true);

describe("lapicWithLint()", () => {
  test("LVT0 = ExtINT (0x700), LVT1 = NMI (0x400), other bits kept, input untouched", () => {
    const page = new Uint8Array(1024);
    const v = new DataView(page.buffer);
    v.setUint32(APIC_LVT0, 0x0001_0000, true); // masked, fixed
    v.setUint32(APIC_LVT1, 0x0001_0730, true); // masked, ExtINT, vector 0x30
    const out = lapicWithLint(page);
    expect(u32(out, APIC_LVT0)).toBe(0x0001_0700);
    expect(u32(out, APIC_LVT1)).toBe(0x0001_0430);
    expect(u32(page, APIC_LVT0)).toBe(0x0001_0000);
    expect([APIC_LVT0, APIC_LVT1, APIC_MODE_EXTINT, APIC_MODE_NMI]).toEqual([0x350, 0x360, 7, 4]);
  });

  test("setDeliveryMode() replaces bits 10:8 only", () => {
    expect(setDeliveryMode(0xffff_ffff, 0)).toBe(0xffff_f8ff);
    expect(setDeliveryMode(0, APIC_MODE_NMI)).toBe(0x400);
  });

  test("KVM keeps the delivery modes through KVM_SET_LAPIC", () => {
    const kvm = Kvm.open();
    const vm = new VmFd(kvm.createVm());
    try {
      vm.createIrqchip();
      for (const id of [0, 1]) {
        const vcpu = new VcpuFd(vm.createVcpu(id));
        vcpu.setLapic(lapicWithLint(vcpu.getLapic()));
        const page = vcpu.getLapic();
        expect((u32(page, APIC_LVT0) >> 8) & 7).toBe(APIC_MODE_EXTINT);
        expect((u32(page, APIC_LVT1) >> 8) & 7).toBe(APIC_MODE_NMI);
        vcpu.close();
      }
    } finally {
      vm.close();
      kvm.close();
    }
  });
});
