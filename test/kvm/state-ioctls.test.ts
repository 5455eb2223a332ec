/**
 * The state ioctls a snapshot needs, on real KVM: each getter returns the struct's bytes, and restoring
 * them gives the same bytes back (get, set, get). Runs on a fresh VM with the in-kernel irqchip and PIT
 * (the TestMachine harness), before the guest ever ran.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { EINVAL } from "../../ffi/errno-names.ts";
import {
  KVM_CLOCK_DATA_LAYOUT,
  KVM_DEBUGREGS_LAYOUT,
  KVM_FPU_LAYOUT,
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_LAYOUT,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
  KVM_MP_STATE_RUNNABLE,
  KVM_PIT_CHANNEL_STATE_LAYOUT,
  KVM_PIT_STATE2_LAYOUT,
  KVM_REGS_LAYOUT,
  KVM_SREGS_LAYOUT,
  KVM_VCPU_EVENTS_LAYOUT,
  KVM_XCRS_LAYOUT,
  KVM_XSAVE_LAYOUT,
} from "../../ffi/kvm-structs.ts";
import { KvmError } from "../../src/kvm/kvm-error.ts";
import { xcr0 } from "../../src/kvm/vcpu-fd.ts";
import { clockNs } from "../../src/kvm/vm-fd.ts";
import { TestMachine } from "../helpers/kvm-harness.ts";

const MIB = 1 << 20;
const PIT_CHANNELS = 3;
/** IA32_TSC (0x10) counts on while the test runs; every other MSR KVM lists stays put. */
const MSR_IA32_TSC = 0x10;
/** XCR0 bit 0: x87 state is always enabled. */
const XCR0_X87 = 1n;
/** The kvmclock MSR a guest writes with its pvclock area's address (KVM's paravirtual MSR range). */
const MSR_KVM_SYSTEM_TIME_NEW = 0x4b56_4d01;
const KVMCLOCK_ENABLE = 1n;
/** A page of guest RAM for the pvclock area. */
const PVCLOCK_GPA = 0x8000;
/** A kvmclock value to set: 1000 s of guest time. */
const CLOCK_SET_NS = 1_000_000_000_000n;
/** Upper bound on how far kvmclock may move on between KVM_SET_CLOCK and KVM_GET_CLOCK here. */
const CLOCK_SLACK_NS = 60_000_000_000n;

let machine: TestMachine;
beforeAll(() => {
  machine = TestMachine.create(16 * MIB);
});
afterAll(() => machine.close());

/** get, set(get), get: the second snapshot must equal the first, and it has the struct's size. */
function roundTrip(size: number, get: () => Uint8Array, set: (s: Uint8Array) => void): void {
  const first = get();
  expect(first.byteLength).toBe(size);
  set(first);
  expect(get()).toEqual(first);
}

describe("vCPU state round trips", () => {
  test("REGS and SREGS as bytes, consistent with the typed getters", () => {
    const { vcpu } = machine;
    roundTrip(
      KVM_REGS_LAYOUT.size,
      () => vcpu.getRegsBytes(),
      (s) => vcpu.setRegsBytes(s),
    );
    roundTrip(
      KVM_SREGS_LAYOUT.size,
      () => vcpu.getSregsBytes(),
      (s) => vcpu.setSregsBytes(s),
    );
    const rip = new DataView(vcpu.getRegsBytes().buffer).getBigUint64(
      KVM_REGS_LAYOUT.fields.rip.offset,
      true,
    );
    expect(rip).toBe(vcpu.getRegs().rip);
  });

  test("FPU", () => {
    const { vcpu } = machine;
    roundTrip(
      KVM_FPU_LAYOUT.size,
      () => vcpu.getFpu(),
      (s) => vcpu.setFpuBytes(s),
    );
  });

  test("XSAVE (KVM_GET_XSAVE2 with the VM's KVM_CAP_XSAVE2 size, else 4096 bytes) and XCRS", () => {
    const { vcpu, vm } = machine;
    const size2 = vm.xsave2Size();
    const size = size2 > 0 ? Math.max(size2, KVM_XSAVE_LAYOUT.size) : KVM_XSAVE_LAYOUT.size;
    roundTrip(
      size,
      () => vcpu.getXsave(size2),
      (s) => vcpu.setXsave(s),
    );
    // Without XSAVE2 the legacy ioctl still works and gives the first 4096 bytes.
    expect(vcpu.getXsave(0)).toEqual(vcpu.getXsave(size2).subarray(0, KVM_XSAVE_LAYOUT.size));
    roundTrip(
      KVM_XCRS_LAYOUT.size,
      () => vcpu.getXcrs(),
      (s) => vcpu.setXcrs(s),
    );
    expect((xcr0(vcpu.getXcrs()) ?? 0n) & XCR0_X87).toBe(XCR0_X87);
  });

  test("MSRS: every MSR in KVM_GET_MSR_INDEX_LIST is read, written back, and reads the same", () => {
    const { vcpu, kvm } = machine;
    const list = kvm.getMsrIndexList();
    expect(list.length).toBeGreaterThan(10);
    expect(list).toContain(MSR_IA32_TSC);
    const indices = list.filter((i) => i !== MSR_IA32_TSC);
    const values = vcpu.getMsrs(indices);
    expect(values.length).toBeGreaterThan(0);
    expect(vcpu.setMsrs(values)).toBe(values.length);
    expect(vcpu.getMsrs(values.map(([i]) => i))).toEqual(values);
  });

  test("LAPIC and MP_STATE", () => {
    const { vcpu } = machine;
    roundTrip(
      1024,
      () => vcpu.getLapic(),
      (s) => vcpu.setLapic(s),
    );
    expect(vcpu.getMpState()).toBe(KVM_MP_STATE_RUNNABLE);
    vcpu.setMpState(KVM_MP_STATE_RUNNABLE);
    expect(vcpu.getMpState()).toBe(KVM_MP_STATE_RUNNABLE);
  });

  test("VCPU_EVENTS and DEBUGREGS", () => {
    const { vcpu } = machine;
    roundTrip(
      KVM_VCPU_EVENTS_LAYOUT.size,
      () => vcpu.getVcpuEvents(),
      (s) => vcpu.setVcpuEvents(s),
    );
    roundTrip(
      KVM_DEBUGREGS_LAYOUT.size,
      () => vcpu.getDebugregs(),
      (s) => vcpu.setDebugregs(s),
    );
  });

  test("TSC_KHZ: set to what it reads keeps it", () => {
    const { vcpu } = machine;
    const khz = vcpu.getTscKhz();
    expect(khz).toBeGreaterThan(0);
    vcpu.setTscKhz(khz);
    expect(vcpu.getTscKhz()).toBe(khz);
  });

  test("KVMCLOCK_CTRL: refused (EINVAL, named) until kvmclock is on, accepted once it is", () => {
    const { vcpu } = machine;
    let error: unknown;
    try {
      vcpu.kvmclockCtrl();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KvmError);
    expect((error as KvmError).errno).toBe(EINVAL);
    expect((error as KvmError).message).toStartWith("KVM_KVMCLOCK_CTRL: invalid argument (EINVAL)");
    // What a guest's kvmclock driver does: point MSR_KVM_SYSTEM_TIME_NEW at a pvclock area, enable bit set.
    expect(vcpu.setMsrs([[MSR_KVM_SYSTEM_TIME_NEW, BigInt(PVCLOCK_GPA) | KVMCLOCK_ENABLE]])).toBe(1);
    vcpu.kvmclockCtrl();
  });

  test("a snapshot of the wrong size is refused before the ioctl, naming both sizes", () => {
    expect(() => machine.vcpu.setRegsBytes(new Uint8Array(8))).toThrow(
      `KVM_SET_REGS: the snapshot is 8 bytes; the struct is ${KVM_REGS_LAYOUT.size}`,
    );
  });
});

describe("VM state round trips", () => {
  test.each([
    ["PIC master", KVM_IRQCHIP_PIC_MASTER],
    ["PIC slave", KVM_IRQCHIP_PIC_SLAVE],
    ["IOAPIC", KVM_IRQCHIP_IOAPIC],
  ] as const)("IRQCHIP %s", (_name, chip) => {
    const { vm } = machine;
    roundTrip(
      KVM_IRQCHIP_LAYOUT.size,
      () => vm.getIrqchip(chip),
      (s) => vm.setIrqchip(s),
    );
    const chipId = new DataView(vm.getIrqchip(chip).buffer).getUint32(
      KVM_IRQCHIP_LAYOUT.fields.chip_id.offset,
      true,
    );
    expect(chipId).toBe(chip);
  });

  test("PIT2: the same channel state back; each channel's load time is re-stamped by the set, never earlier", () => {
    const { vm } = machine;
    const first = vm.getPit2();
    expect(first.byteLength).toBe(KVM_PIT_STATE2_LAYOUT.size);
    vm.setPit2(first);
    const second = vm.getPit2();
    const loadTime = KVM_PIT_CHANNEL_STATE_LAYOUT.fields.count_load_time.offset;
    const a = new DataView(first.buffer);
    const b = new DataView(second.buffer);
    for (let ch = 0; ch < PIT_CHANNELS; ch++) {
      const at =
        KVM_PIT_STATE2_LAYOUT.fields.channels.offset + ch * KVM_PIT_CHANNEL_STATE_LAYOUT.size + loadTime;
      expect(b.getBigInt64(at, true)).toBeGreaterThanOrEqual(a.getBigInt64(at, true));
      a.setBigInt64(at, 0n, true);
      b.setBigInt64(at, 0n, true);
    }
    expect(second).toEqual(first);
  });

  test("CLOCK: set to a value, read back at or just after it", () => {
    const { vm } = machine;
    const snapshot = vm.getClock();
    expect(snapshot.byteLength).toBe(KVM_CLOCK_DATA_LAYOUT.size);
    const wanted = new Uint8Array(KVM_CLOCK_DATA_LAYOUT.size);
    new DataView(wanted.buffer).setBigUint64(KVM_CLOCK_DATA_LAYOUT.fields.clock.offset, CLOCK_SET_NS, true);
    vm.setClock(wanted);
    const now = clockNs(vm.getClock());
    expect(now).toBeGreaterThanOrEqual(CLOCK_SET_NS);
    expect(now).toBeLessThan(CLOCK_SET_NS + CLOCK_SLACK_NS);
  });
});
