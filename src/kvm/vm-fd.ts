/**
 * A KVM VM fd: VM-wide ioctls only, one method each, no policy
 * (https://docs.kernel.org/virt/kvm/api.html). VM ioctls are safe from any thread, so vCPU workers
 * hold a VmFd too (for KVM_IRQ_LINE).
 */

import {
  KVM_CREATE_IRQCHIP,
  KVM_CREATE_PIT2,
  KVM_CREATE_VCPU,
  KVM_GET_IRQCHIP,
  KVM_IRQ_LINE,
  KVM_IRQCHIP_SIZE,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_SET_TSS_ADDR,
  KVM_SET_USER_MEMORY_REGION,
} from "../../ffi/ioctl-numbers.ts";
import {
  KVM_IRQ_LEVEL_LAYOUT,
  KVM_PIT_CONFIG_LAYOUT,
  KVM_USERSPACE_MEMORY_REGION_LAYOUT,
} from "../../ffi/kvm-structs.ts";
import { addressOf, libc } from "../../ffi/libc.ts";
import { check } from "./kvm-error.ts";

/** kvm_irqchip.chip_id values (KVM_IRQCHIP_* in <asm/kvm.h>). */
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

/** A VM file descriptor; `fd` is passed to workers as a number. */
export class VmFd {
  constructor(readonly fd: number) {}

  /** KVM_CREATE_VCPU: the id is also the vCPU's initial APIC id. Returns the vCPU fd. */
  createVcpu(id: number): number {
    return check("KVM_CREATE_VCPU", libc.ioctl(this.fd, KVM_CREATE_VCPU, id));
  }

  /** KVM_SET_USER_MEMORY_REGION: maps `size` bytes at host address `hostAddr` to guest `gpa`. */
  setUserMemoryRegion(slot: number, gpa: number, size: number, hostAddr: bigint, flags = 0): void {
    const f = KVM_USERSPACE_MEMORY_REGION_LAYOUT.fields;
    const buf = new Uint8Array(KVM_USERSPACE_MEMORY_REGION_LAYOUT.size);
    const v = new DataView(buf.buffer);
    v.setUint32(f.slot.offset, slot, true);
    v.setUint32(f.flags.offset, flags, true);
    v.setBigUint64(f.guest_phys_addr.offset, BigInt(gpa), true);
    v.setBigUint64(f.memory_size.offset, BigInt(size), true);
    v.setBigUint64(f.userspace_addr.offset, hostAddr, true);
    check("KVM_SET_USER_MEMORY_REGION", libc.ioctl(this.fd, KVM_SET_USER_MEMORY_REGION, addressOf(buf)));
  }

  /** KVM_SET_TSS_ADDR: three pages of guest-physical space KVM needs on Intel hosts. */
  setTssAddr(gpa: number): void {
    check("KVM_SET_TSS_ADDR", libc.ioctl(this.fd, KVM_SET_TSS_ADDR, gpa));
  }

  /** KVM_SET_IDENTITY_MAP_ADDR: one page for the real-mode identity map on Intel hosts. */
  setIdentityMapAddr(gpa: number): void {
    const buf = new BigUint64Array([BigInt(gpa)]);
    check("KVM_SET_IDENTITY_MAP_ADDR", libc.ioctl(this.fd, KVM_SET_IDENTITY_MAP_ADDR, addressOf(buf)));
  }

  /** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and per-vCPU LAPICs. Call before creating vCPUs. */
  createIrqchip(): void {
    check("KVM_CREATE_IRQCHIP", libc.ioctl(this.fd, KVM_CREATE_IRQCHIP, 0));
  }

  /** KVM_CREATE_PIT2: the in-kernel i8254 timer. */
  createPit2(flags: number): void {
    const buf = new Uint8Array(KVM_PIT_CONFIG_LAYOUT.size);
    new DataView(buf.buffer).setUint32(KVM_PIT_CONFIG_LAYOUT.fields.flags.offset, flags, true);
    check("KVM_CREATE_PIT2", libc.ioctl(this.fd, KVM_CREATE_PIT2, addressOf(buf)));
  }

  /** KVM_IRQ_LINE: sets a GSI's level on the in-kernel irqchip. Safe from any thread. */
  irqLine(gsi: number, level: 0 | 1): void {
    const buf = new Uint32Array(KVM_IRQ_LEVEL_LAYOUT.size / 4);
    buf[KVM_IRQ_LEVEL_LAYOUT.fields.irq.offset / 4] = gsi;
    buf[KVM_IRQ_LEVEL_LAYOUT.fields.level.offset / 4] = level;
    check("KVM_IRQ_LINE", libc.ioctl(this.fd, KVM_IRQ_LINE, addressOf(buf)));
  }

  /** KVM_GET_IRQCHIP: the raw struct kvm_irqchip (chip_id, pad, then the chip's state). */
  getIrqchip(chipId: number): Uint8Array {
    const buf = new Uint8Array(KVM_IRQCHIP_SIZE);
    new DataView(buf.buffer).setUint32(0, chipId, true);
    check("KVM_GET_IRQCHIP", libc.ioctl(this.fd, KVM_GET_IRQCHIP, addressOf(buf)));
    return buf;
  }

  close(): void {
    libc.close(this.fd);
  }
}
