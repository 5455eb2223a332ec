/**
 * A KVM VM fd: VM-wide ioctls only, one method each, no policy
 * (https://docs.kernel.org/virt/kvm/api.html). VM ioctls are safe from any thread, so vCPU workers
 * hold a VmFd too (for KVM_IRQ_LINE).
 *
 * State getters (irqchip, PIT, clock) return the kernel struct's bytes: an opaque snapshot that a
 * caller saves and hands back to the matching setter unchanged. The few fields worth reading have
 * accessors (`ioapicIrr`, `picIrr`, `clockNs`); layouts are in ffi/kvm-structs.ts.
 */

import {
  KVM_CHECK_EXTENSION,
  KVM_CREATE_IRQCHIP,
  KVM_CREATE_PIT2,
  KVM_CREATE_VCPU,
  KVM_GET_CLOCK,
  KVM_GET_DIRTY_LOG,
  KVM_GET_IRQCHIP,
  KVM_GET_PIT2,
  KVM_IOEVENTFD,
  KVM_IRQ_LINE,
  KVM_IRQFD,
  KVM_SET_CLOCK,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_SET_IRQCHIP,
  KVM_SET_PIT2,
  KVM_SET_TSS_ADDR,
  KVM_SET_USER_MEMORY_REGION,
} from "../../ffi/ioctl-numbers.ts";
import {
  KVM_CAP_XSAVE2,
  KVM_CLOCK_DATA_LAYOUT,
  KVM_DIRTY_LOG_LAYOUT,
  KVM_IOAPIC_STATE_LAYOUT,
  KVM_IOEVENTFD_FLAG_DATAMATCH,
  KVM_IOEVENTFD_FLAG_DEASSIGN,
  KVM_IOEVENTFD_FLAG_PIO,
  KVM_IOEVENTFD_LAYOUT,
  KVM_IRQ_LEVEL_LAYOUT,
  KVM_IRQCHIP_IOAPIC,
  KVM_IRQCHIP_LAYOUT,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
  KVM_IRQFD_FLAG_DEASSIGN,
  KVM_IRQFD_FLAG_RESAMPLE,
  KVM_IRQFD_LAYOUT,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_PIC_STATE_LAYOUT,
  KVM_PIT_CONFIG_LAYOUT,
  KVM_PIT_STATE2_LAYOUT,
  KVM_USERSPACE_MEMORY_REGION_LAYOUT,
} from "../../ffi/kvm-structs.ts";
import { addressOf, libc } from "../../ffi/libc.ts";
import { check } from "./kvm-error.ts";

export { KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_MEM_LOG_DIRTY_PAGES };
export type IrqchipId =
  | typeof KVM_IRQCHIP_PIC_MASTER
  | typeof KVM_IRQCHIP_PIC_SLAVE
  | typeof KVM_IRQCHIP_IOAPIC;

/** Dirty-log bitmaps are arrays of u64: one bit per 4 KiB page, rounded up to whole words. */
const DIRTY_BITMAP_WORD_BITS = 64;
const PAGE_SIZE = 4096;

/** Where a guest write KVM_IOEVENTFD turns into an eventfd signal. */
export interface IoEventFdMatch {
  /** Guest-physical address (MMIO) or port (with `pio`). */
  addr: number;
  /** Access width 1, 2, 4 or 8; 0 matches any width (KVM_CAP_IOEVENTFD_ANY_LENGTH). */
  len: 0 | 1 | 2 | 4 | 8;
  /** A port, not an MMIO address. */
  pio?: boolean;
  /** Only writes of exactly this value signal; without it every write does. */
  datamatch?: bigint;
}

/** The IOAPIC's interrupt request bits (one per pin) from a KVM_GET_IRQCHIP(KVM_IRQCHIP_IOAPIC) snapshot. */
export function ioapicIrr(irqchip: Uint8Array): number {
  const at = KVM_IRQCHIP_LAYOUT.fields["chip.ioapic"].offset + KVM_IOAPIC_STATE_LAYOUT.fields.irr.offset;
  return new DataView(irqchip.buffer, irqchip.byteOffset).getUint32(at, true);
}

/** The interrupt request register (one bit per line) from a KVM_GET_IRQCHIP snapshot of either PIC. */
export function picIrr(irqchip: Uint8Array): number {
  return irqchip[KVM_IRQCHIP_LAYOUT.fields["chip.pic"].offset + KVM_PIC_STATE_LAYOUT.fields.irr.offset]!;
}

/** kvmclock in nanoseconds from a KVM_GET_CLOCK snapshot. */
export function clockNs(clock: Uint8Array): bigint {
  return new DataView(clock.buffer, clock.byteOffset).getBigUint64(
    KVM_CLOCK_DATA_LAYOUT.fields.clock.offset,
    true,
  );
}

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

  /** KVM_CHECK_EXTENSION on the VM: some answers (KVM_CAP_XSAVE2) depend on the VM. */
  checkExtension(cap: number): number {
    return check("KVM_CHECK_EXTENSION", libc.ioctl(this.fd, KVM_CHECK_EXTENSION, cap));
  }

  /**
   * The kvm_xsave size KVM_GET_XSAVE2 fills for this VM's vCPUs, or 0 when the host lacks
   * KVM_CAP_XSAVE2 (then KVM_GET_XSAVE and its 4096 bytes are all there is).
   */
  xsave2Size(): number {
    return this.checkExtension(KVM_CAP_XSAVE2);
  }

  /** KVM_GET_IRQCHIP: the raw struct kvm_irqchip (chip_id, pad, then the chip's state), a snapshot. */
  getIrqchip(chipId: IrqchipId): Uint8Array {
    const buf = new Uint8Array(KVM_IRQCHIP_LAYOUT.size);
    new DataView(buf.buffer).setUint32(KVM_IRQCHIP_LAYOUT.fields.chip_id.offset, chipId, true);
    check("KVM_GET_IRQCHIP", libc.ioctl(this.fd, KVM_GET_IRQCHIP, addressOf(buf)));
    return buf;
  }

  /** KVM_SET_IRQCHIP: restores a getIrqchip snapshot (its chip_id says which chip). */
  setIrqchip(state: Uint8Array): void {
    check(
      "KVM_SET_IRQCHIP",
      libc.ioctl(this.fd, KVM_SET_IRQCHIP, addressOf(sized(state, KVM_IRQCHIP_LAYOUT.size, "kvm_irqchip"))),
    );
  }

  /** KVM_GET_PIT2: the in-kernel i8254's three channels, a snapshot. */
  getPit2(): Uint8Array {
    const buf = new Uint8Array(KVM_PIT_STATE2_LAYOUT.size);
    check("KVM_GET_PIT2", libc.ioctl(this.fd, KVM_GET_PIT2, addressOf(buf)));
    return buf;
  }

  setPit2(state: Uint8Array): void {
    check(
      "KVM_SET_PIT2",
      libc.ioctl(
        this.fd,
        KVM_SET_PIT2,
        addressOf(sized(state, KVM_PIT_STATE2_LAYOUT.size, "kvm_pit_state2")),
      ),
    );
  }

  /** KVM_GET_CLOCK: kvmclock's base (`clockNs` reads it), a snapshot. */
  getClock(): Uint8Array {
    const buf = new Uint8Array(KVM_CLOCK_DATA_LAYOUT.size);
    check("KVM_GET_CLOCK", libc.ioctl(this.fd, KVM_GET_CLOCK, addressOf(buf)));
    return buf;
  }

  /** KVM_SET_CLOCK: restores a getClock snapshot (KVM honours the flags it understands). */
  setClock(state: Uint8Array): void {
    check(
      "KVM_SET_CLOCK",
      libc.ioctl(
        this.fd,
        KVM_SET_CLOCK,
        addressOf(sized(state, KVM_CLOCK_DATA_LAYOUT.size, "kvm_clock_data")),
      ),
    );
  }

  /** KVM_IOEVENTFD: guest writes matching `match` add 1 to `eventFd` inside KVM, with no exit to us. */
  registerIoEventFd(eventFd: number, match: IoEventFdMatch): void {
    this.ioeventfd("KVM_IOEVENTFD", eventFd, match, 0);
  }

  /** KVM_IOEVENTFD with KVM_IOEVENTFD_FLAG_DEASSIGN: `match` must be the one registered. */
  unregisterIoEventFd(eventFd: number, match: IoEventFdMatch): void {
    this.ioeventfd("KVM_IOEVENTFD (deassign)", eventFd, match, KVM_IOEVENTFD_FLAG_DEASSIGN);
  }

  private ioeventfd(call: string, eventFd: number, match: IoEventFdMatch, extraFlags: number): void {
    const f = KVM_IOEVENTFD_LAYOUT.fields;
    const buf = new Uint8Array(KVM_IOEVENTFD_LAYOUT.size);
    const v = new DataView(buf.buffer);
    let flags = extraFlags;
    if (match.pio) flags |= KVM_IOEVENTFD_FLAG_PIO;
    if (match.datamatch !== undefined) {
      flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
      v.setBigUint64(f.datamatch.offset, BigInt.asUintN(64, match.datamatch), true);
    }
    v.setBigUint64(f.addr.offset, BigInt(match.addr), true);
    v.setUint32(f.len.offset, match.len, true);
    v.setInt32(f.fd.offset, eventFd, true);
    v.setUint32(f.flags.offset, flags, true);
    check(call, libc.ioctl(this.fd, KVM_IOEVENTFD, addressOf(buf)));
  }

  /**
   * KVM_IRQFD: a write to `eventFd` raises `gsi` (edge: a pulse; level: held until EOI). With
   * `resampleFd` the route is level-triggered: KVM lowers the line at EOI and signals `resampleFd`, so
   * the device can raise it again if it still needs service.
   */
  registerIrqFd(eventFd: number, gsi: number, resampleFd?: number): void {
    this.irqfd(
      "KVM_IRQFD",
      eventFd,
      gsi,
      resampleFd === undefined ? 0 : KVM_IRQFD_FLAG_RESAMPLE,
      resampleFd ?? 0,
    );
  }

  /** KVM_IRQFD with KVM_IRQFD_FLAG_DEASSIGN. */
  unregisterIrqFd(eventFd: number, gsi: number): void {
    this.irqfd("KVM_IRQFD (deassign)", eventFd, gsi, KVM_IRQFD_FLAG_DEASSIGN, 0);
  }

  private irqfd(call: string, eventFd: number, gsi: number, flags: number, resampleFd: number): void {
    const f = KVM_IRQFD_LAYOUT.fields;
    const buf = new Uint8Array(KVM_IRQFD_LAYOUT.size);
    const v = new DataView(buf.buffer);
    v.setUint32(f.fd.offset, eventFd, true);
    v.setUint32(f.gsi.offset, gsi, true);
    v.setUint32(f.flags.offset, flags, true);
    v.setUint32(f.resamplefd.offset, resampleFd, true);
    check(call, libc.ioctl(this.fd, KVM_IRQFD, addressOf(buf)));
  }

  /**
   * KVM_GET_DIRTY_LOG: one bit per page of memory slot `slot` (`slotBytes` long), set for pages the
   * guest wrote since the last call; KVM clears the log as it returns it. The slot must have been
   * registered with KVM_MEM_LOG_DIRTY_PAGES.
   */
  getDirtyLog(slot: number, slotBytes: number): BigUint64Array {
    const pages = Math.ceil(slotBytes / PAGE_SIZE);
    const bitmap = new BigUint64Array(Math.ceil(pages / DIRTY_BITMAP_WORD_BITS));
    const f = KVM_DIRTY_LOG_LAYOUT.fields;
    const buf = new Uint8Array(KVM_DIRTY_LOG_LAYOUT.size);
    const v = new DataView(buf.buffer);
    v.setUint32(f.slot.offset, slot, true);
    v.setBigUint64(f.dirty_bitmap.offset, BigInt(addressOf(bitmap)), true);
    check(`KVM_GET_DIRTY_LOG (slot ${slot})`, libc.ioctl(this.fd, KVM_GET_DIRTY_LOG, addressOf(buf)));
    return bitmap;
  }

  close(): void {
    libc.close(this.fd);
  }
}

/** `state` when it is exactly one `cName` long; a snapshot of another struct is a caller bug. */
function sized(state: Uint8Array, size: number, cName: string): Uint8Array {
  if (state.byteLength !== size)
    throw new RangeError(`${cName} snapshot is ${state.byteLength} bytes; struct ${cName} is ${size}`);
  return state;
}
