/**
 * A one-vCPU KVM machine for the arch tests, run on the test's own thread: in-kernel irqchip and PIT,
 * guest RAM split around the hole, the kvm_run page mapped, and `run()` returning each exit decoded.
 * Port reads answer as a PC with an idle 16550 at 0x3f8 (LSR = THRE|TEMT) and nothing elsewhere; port
 * writes to 0x3f8 are collected as serial output. No workers, no devices: just enough to see a test
 * guest's port and MMIO accesses. With the in-kernel LAPIC a guest's `hlt` waits inside KVM_RUN for an
 * interrupt instead of exiting, so test guests end with a port write the test stops at. Exits are
 * decoded by src/kvm/kvm-run.ts, the run loop's own decoder.
 */
import { KVM_EXIT_NAMES, KVM_PIT_SPEAKER_DUMMY } from "../../ffi/kvm-structs.ts";
import { FPU_FCW_RESET, flatProtectedModeSregs, MXCSR_RESET } from "../../src/arch/x86_64/cpu-state.ts";
import { cpuidForVcpu } from "../../src/arch/x86_64/cpuid.ts";
import { COM1_PORT, IDENTITY_MAP_ADDRESS, ramRanges, TSS_ADDRESS } from "../../src/arch/x86_64/layout.ts";
import { loadRawImage, rawEntryRegs } from "../../src/arch/x86_64/raw-payload.ts";
import { Kvm } from "../../src/kvm/kvm.ts";
import { VcpuFd } from "../../src/kvm/vcpu-fd.ts";
import { KVM_MEM_LOG_DIRTY_PAGES, VmFd } from "../../src/kvm/vm-fd.ts";
import { GuestMemory } from "../../src/memory/guest-memory.ts";

const UART_LSR = 5;
const UART_LSR_IDLE = 0x60;

/** A decoded exit, copied out of kvm_run (the decoder's io/mmio records are reused on the next run). */
export type Exit =
  | { kind: "io"; port: number; out: boolean; size: number; value: number }
  | { kind: "mmio"; address: number; write: boolean; len: number; data: bigint }
  | { kind: "other"; reason: number; name: string }
  | { kind: "errno"; errno: number };

export interface TestMachineOptions {
  /** Register every RAM slot with KVM_MEM_LOG_DIRTY_PAGES (for KVM_GET_DIRTY_LOG). */
  logDirtyPages?: boolean;
}

export class TestMachine {
  readonly serial: number[] = [];
  private constructor(
    readonly kvm: Kvm,
    readonly vm: VmFd,
    readonly memory: GuestMemory,
    readonly vcpu: VcpuFd,
  ) {}

  static create(ramSize: number, options: TestMachineOptions = {}): TestMachine {
    const kvm = Kvm.open();
    const vm = new VmFd(kvm.createVm());
    vm.setIdentityMapAddr(IDENTITY_MAP_ADDRESS);
    vm.setTssAddr(TSS_ADDRESS);
    vm.createIrqchip();
    vm.createPit2(KVM_PIT_SPEAKER_DUMMY);
    const memory = GuestMemory.allocate(ramRanges(ramSize));
    const flags = options.logDirtyPages ? KVM_MEM_LOG_DIRTY_PAGES : 0;
    memory.descriptors.forEach((r, slot) => {
      vm.setUserMemoryRegion(slot, r.gpa, r.size, BigInt(r.hostAddr), flags);
    });
    const vcpu = new VcpuFd(vm.createVcpu(0));
    vcpu.mapKvmRun(kvm.getVcpuMmapSize());
    return new TestMachine(kvm, vm, memory, vcpu);
  }

  /** Loads a raw image (test/guests/*.S) and sets vCPU 0 up as the builder does for a raw payload. */
  startRaw(image: Uint8Array, ramSize: number): void {
    loadRawImage(this.memory, image);
    const { vcpu } = this;
    vcpu.setCpuid2(cpuidForVcpu(this.kvm.getSupportedCpuid(), 0, { maxVcpus: 1 }));
    vcpu.setFpu(FPU_FCW_RESET, MXCSR_RESET);
    vcpu.setSregs(flatProtectedModeSregs(vcpu.getSregs()));
    vcpu.setRegs(rawEntryRegs(1, 1, ramSize));
  }

  /** One KVM_RUN, decoded by the VMM's own decoder; port reads are answered (serial output kept). */
  run(): Exit {
    const err = this.vcpu.run();
    if (err !== 0) return { kind: "errno", errno: err };
    const run = this.vcpu.kvmRun;
    const exit = run.exit();
    if (exit.kind === "io") {
      const { port, size, dataOffset: at } = exit;
      const v = run.view;
      if (exit.direction === "out") {
        const value =
          size === 1 ? v.getUint8(at) : size === 2 ? v.getUint16(at, true) : v.getUint32(at, true);
        if (port === COM1_PORT) this.serial.push(value & 0xff);
        return { kind: "io", port, out: true, size, value };
      }
      const value = port === COM1_PORT + UART_LSR ? UART_LSR_IDLE : 0xffff_ffff;
      for (let i = 0; i < size; i++) v.setUint8(at + i, (value >>> (8 * i)) & 0xff);
      return { kind: "io", port, out: false, size, value };
    }
    if (exit.kind === "mmio") {
      const data = run.mmioValue64();
      if (!exit.isWrite) run.setMmioValue64(0xffff_ffff_ffff_ffffn);
      return { kind: "mmio", address: exit.gpa, write: exit.isWrite, len: exit.len, data };
    }
    const reason = run.exitReason;
    return { kind: "other", reason, name: KVM_EXIT_NAMES[reason] ?? exit.kind };
  }

  /** Runs until an `out` to `port` (bounded by `maxExits`); returns every exit before it. */
  runUntilOut(port: number, maxExits = 100): Exit[] {
    const exits: Exit[] = [];
    for (let i = 0; i < maxExits; i++) {
      const exit = this.run();
      if (exit.kind === "io" && exit.out && exit.port === port) return exits;
      exits.push(exit);
      if (exit.kind === "other" || exit.kind === "errno")
        throw new Error(`guest stopped before writing port 0x${port.toString(16)}: ${JSON.stringify(exit)}`);
    }
    throw new Error(`no write to port 0x${port.toString(16)} within ${maxExits} exits`);
  }

  serialText(): string {
    return new TextDecoder().decode(new Uint8Array(this.serial));
  }

  close(): void {
    this.vcpu.kvmRun.unmap();
    this.vcpu.close();
    this.memory.close();
    this.vm.close();
    this.kvm.close();
  }
}
