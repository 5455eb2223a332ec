/**
 * A one-vCPU KVM machine for the arch tests, run on the test's own thread: in-kernel irqchip and PIT,
 * guest RAM split around the hole, the kvm_run page mapped, and `run()` returning each exit decoded.
 * Port reads answer as a PC with an idle 16550 at 0x3f8 (LSR = THRE|TEMT) and nothing elsewhere; port
 * writes to 0x3f8 are collected as serial output. No workers, no devices: just enough to see a test
 * guest's port and MMIO accesses. With the in-kernel LAPIC a guest's `hlt` waits inside KVM_RUN for an
 * interrupt instead of exiting, so test guests end with a port write the test stops at.
 */
import { toArrayBuffer } from "bun:ffi";
import {
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_MMIO,
  KVM_EXIT_NAMES,
  KVM_PIT_SPEAKER_DUMMY,
  KVM_RUN_LAYOUT,
} from "../../ffi/kvm-structs.ts";
import { errno, libc, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../ffi/libc.ts";
import { COM1_PORT, IDENTITY_MAP_ADDRESS, ramRanges, TSS_ADDRESS } from "../../src/arch/x86_64/layout.ts";
import { Kvm } from "../../src/kvm/kvm.ts";
import { KvmError } from "../../src/kvm/kvm-error.ts";
import { VcpuFd } from "../../src/kvm/vcpu-fd.ts";
import { VmFd } from "../../src/kvm/vm-fd.ts";
import { GuestMemory } from "../../src/memory/guest-memory.ts";

const F = KVM_RUN_LAYOUT.fields;
const UART_LSR = 5;
const UART_LSR_IDLE = 0x60;

export type Exit =
  | { kind: "io"; port: number; out: boolean; size: number; value: number }
  | { kind: "mmio"; address: number; write: boolean; len: number; data: bigint }
  | { kind: "other"; reason: number; name: string }
  | { kind: "errno"; errno: number };

export class TestMachine {
  readonly serial: number[] = [];
  private constructor(
    readonly kvm: Kvm,
    readonly vm: VmFd,
    readonly memory: GuestMemory,
    readonly vcpu: VcpuFd,
    private readonly runPage: Uint8Array,
    private readonly runAddr: number,
    private readonly runSize: number,
  ) {}

  static create(ramSize: number): TestMachine {
    const kvm = Kvm.open();
    const vm = new VmFd(kvm.createVm());
    vm.setIdentityMapAddr(IDENTITY_MAP_ADDRESS);
    vm.setTssAddr(TSS_ADDRESS);
    vm.createIrqchip();
    vm.createPit2(KVM_PIT_SPEAKER_DUMMY);
    const memory = GuestMemory.allocate(ramRanges(ramSize));
    memory.descriptors.forEach((r, slot) => {
      vm.setUserMemoryRegion(slot, r.gpa, r.size, BigInt(r.hostAddr));
    });
    const vcpu = new VcpuFd(vm.createVcpu(0));
    const runSize = kvm.getVcpuMmapSize();
    const addr = libc.mmap(0, runSize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.fd, 0);
    if (BigInt(addr) === MAP_FAILED) throw new KvmError("mmap of kvm_run", errno());
    const runAddr = Number(addr);
    return new TestMachine(
      kvm,
      vm,
      memory,
      vcpu,
      new Uint8Array(toArrayBuffer(runAddr, 0, runSize)),
      runAddr,
      runSize,
    );
  }

  /** One KVM_RUN; port I/O is answered (and serial output kept) before returning. */
  run(): Exit {
    const err = this.vcpu.run();
    if (err !== 0) return { kind: "errno", errno: err };
    const v = new DataView(this.runPage.buffer, this.runPage.byteOffset, this.runPage.byteLength);
    const reason = v.getUint32(F.exit_reason.offset, true);
    if (reason === KVM_EXIT_IO) {
      const out = v.getUint8(F["io.direction"].offset) === KVM_EXIT_IO_OUT;
      const size = v.getUint8(F["io.size"].offset);
      const port = v.getUint16(F["io.port"].offset, true);
      const at = v.getUint32(F["io.data_offset"].offset, true);
      if (out) {
        const value =
          size === 1 ? v.getUint8(at) : size === 2 ? v.getUint16(at, true) : v.getUint32(at, true);
        if (port === COM1_PORT) this.serial.push(value & 0xff);
        return { kind: "io", port, out, size, value };
      }
      const value = port === COM1_PORT + UART_LSR ? UART_LSR_IDLE : 0xffff_ffff;
      for (let i = 0; i < size; i++) v.setUint8(at + i, (value >>> (8 * i)) & 0xff);
      return { kind: "io", port, out, size, value };
    }
    if (reason === KVM_EXIT_MMIO) {
      const write = v.getUint8(F["mmio.is_write"].offset) !== 0;
      const len = v.getUint32(F["mmio.len"].offset, true);
      const data = v.getBigUint64(F["mmio.data"].offset, true);
      if (!write) v.setBigUint64(F["mmio.data"].offset, 0xffff_ffff_ffff_ffffn, true);
      return {
        kind: "mmio",
        address: Number(v.getBigUint64(F["mmio.phys_addr"].offset, true)),
        write,
        len,
        data,
      };
    }
    return { kind: "other", reason, name: KVM_EXIT_NAMES[reason] ?? `exit ${reason}` };
  }

  serialText(): string {
    return new TextDecoder().decode(new Uint8Array(this.serial));
  }

  close(): void {
    libc.munmap(this.runAddr, this.runSize);
    this.vcpu.close();
    this.memory.close();
    this.vm.close();
    this.kvm.close();
  }
}
