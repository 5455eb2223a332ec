/** The ioctl wrappers against the real /dev/kvm: values, and errors that name the ioctl and errno. */
import { describe, expect, test } from "bun:test";
import { KVM_CAP_IRQCHIP, KVM_CAP_MAX_VCPUS, KVM_MP_STATE_RUNNABLE } from "../../ffi/kvm-structs.ts";
import { initialRegs } from "../../src/arch/x86_64/cpu-state.ts";
import { KVM_API_VERSION, Kvm } from "../../src/kvm/kvm.ts";
import { KvmError } from "../../src/kvm/kvm-error.ts";
import { VcpuFd } from "../../src/kvm/vcpu-fd.ts";
import { VmFd } from "../../src/kvm/vm-fd.ts";
import { GuestMemory, GuestMemoryError } from "../../src/memory/guest-memory.ts";

/** An fd number nothing in this process has open. */
const BAD_FD = 0x7fff;

describe("Kvm", () => {
  test("reports API version 12 and the capabilities bunvmm needs", () => {
    const kvm = Kvm.open();
    try {
      expect(kvm.getApiVersion()).toBe(KVM_API_VERSION);
      expect(kvm.checkExtension(KVM_CAP_IRQCHIP)).toBeGreaterThan(0);
      expect(kvm.checkExtension(KVM_CAP_MAX_VCPUS)).toBeGreaterThanOrEqual(255);
      expect(kvm.getVcpuMmapSize()).toBeGreaterThanOrEqual(4096);
      expect(kvm.getSupportedCpuid().leaf(0).length).toBe(1);
    } finally {
      kvm.close();
    }
  });

  test("open of a missing device names the path and errno in words", () => {
    expect(() => Kvm.open("/dev/no-such-kvm")).toThrow(
      "open /dev/no-such-kvm: no such file or directory (ENOENT): is KVM enabled? (load kvm_intel or kvm_amd)",
    );
  });
});

describe("VcpuFd and VmFd", () => {
  test.each([
    ["KVM_GET_REGS", () => new VcpuFd(BAD_FD).getRegs()],
    ["KVM_SET_REGS", () => new VcpuFd(BAD_FD).setRegs(initialRegs({}))],
    ["KVM_GET_SREGS", () => new VcpuFd(BAD_FD).getSregs()],
    ["KVM_GET_LAPIC", () => new VcpuFd(BAD_FD).getLapic()],
    ["KVM_GET_MP_STATE", () => new VcpuFd(BAD_FD).getMpState()],
    ["KVM_SET_FPU", () => new VcpuFd(BAD_FD).setFpu(0x37f, 0x1f80)],
    ["KVM_SET_SIGNAL_MASK", () => new VcpuFd(BAD_FD).setSignalMask(new Uint8Array(8))],
    ["KVM_TRANSLATE", () => new VcpuFd(BAD_FD).translate(0n)],
    ["KVM_CREATE_VCPU", () => new VmFd(BAD_FD).createVcpu(0)],
    ["KVM_IRQ_LINE", () => new VmFd(BAD_FD).irqLine(4, 1)],
    ["KVM_CREATE_IRQCHIP", () => new VmFd(BAD_FD).createIrqchip()],
    ["KVM_SET_TSS_ADDR", () => new VmFd(BAD_FD).setTssAddr(0xfffbd000)],
    ["KVM_GET_XCRS", () => new VcpuFd(BAD_FD).getXcrs()],
    ["KVM_GET_XSAVE", () => new VcpuFd(BAD_FD).getXsave(0)],
    ["KVM_GET_VCPU_EVENTS", () => new VcpuFd(BAD_FD).getVcpuEvents()],
    ["KVM_GET_DEBUGREGS", () => new VcpuFd(BAD_FD).getDebugregs()],
    ["KVM_GET_MSRS", () => new VcpuFd(BAD_FD).getMsrs([0x10])],
    ["KVM_GET_TSC_KHZ", () => new VcpuFd(BAD_FD).getTscKhz()],
    ["KVM_GET_PIT2", () => new VmFd(BAD_FD).getPit2()],
    ["KVM_GET_CLOCK", () => new VmFd(BAD_FD).getClock()],
    ["KVM_IOEVENTFD", () => new VmFd(BAD_FD).registerIoEventFd(BAD_FD, { addr: 0xd0000000, len: 4 })],
    ["KVM_IRQFD (deassign)", () => new VmFd(BAD_FD).unregisterIrqFd(BAD_FD, 5)],
  ])("%s on a closed fd throws KvmError with EBADF in words", (ioctl, call) => {
    let error: unknown;
    try {
      call();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KvmError);
    expect((error as KvmError).message).toBe(`${ioctl}: bad file descriptor (EBADF)`);
  });

  test("KVM_RUN reports EBADF as a value, not an exception (the hot path allocates nothing)", () => {
    expect(new VcpuFd(BAD_FD).run()).toBe(9);
  });

  test("a fresh vCPU round-trips its registers and is runnable", () => {
    const kvm = Kvm.open();
    const vm = new VmFd(kvm.createVm());
    try {
      vm.createIrqchip();
      const vcpu = new VcpuFd(vm.createVcpu(0));
      vcpu.setRegs(initialRegs({ rip: 0x1234n, rax: 0xdeadbeefn }));
      const regs = vcpu.getRegs();
      expect(regs.rip).toBe(0x1234n);
      expect(regs.rax).toBe(0xdeadbeefn);
      const sregs = vcpu.getSregs();
      sregs.cs.base = 0x10000n;
      vcpu.setSregs(sregs);
      expect(vcpu.getSregs().cs.base).toBe(0x10000n);
      expect(vcpu.getMpState()).toBe(KVM_MP_STATE_RUNNABLE);
      vcpu.close();
    } finally {
      vm.close();
      kvm.close();
    }
  });
});

describe("GuestMemory", () => {
  test("bounds-checks every access and refuses unaligned sizes", () => {
    const mem = GuestMemory.allocate([{ gpa: 0, size: 1 << 20 }]);
    try {
      mem.writeU32(0x1000, 0xcafebabe);
      expect(mem.readU32(0x1000)).toBe(0xcafebabe);
      expect(() => mem.readU32((1 << 20) - 2)).toThrow(new GuestMemoryError((1 << 20) - 2, 4));
      expect(() => mem.slice(-1, 1)).toThrow(GuestMemoryError);
    } finally {
      mem.close();
    }
    expect(() => GuestMemory.allocate([{ gpa: 0, size: 5000 }])).toThrow(
      "guest range 0x0+0x1388 is not a whole number of 4096-byte pages",
    );
  });
});
