/**
 * A KVM vCPU fd: vCPU ioctls only, one method each, no policy
 * (https://docs.kernel.org/virt/kvm/api.html). KVM holds the vCPU mutex for the whole KVM_RUN, so
 * while a worker runs this vCPU only that worker may call these (another thread would block until the
 * guest exits).
 *
 * State for snapshots: registers come typed (`getRegs`, `getSregs`) and as the kernel struct's bytes
 * (`getRegsBytes`, ...); the rest (FPU, XSAVE, XCRS, LAPIC, VCPU_EVENTS, DEBUGREGS) only as bytes, an
 * opaque snapshot to hand back to the matching setter. Setters refuse bytes of the wrong size.
 */

import {
  KVM_GET_DEBUGREGS,
  KVM_GET_FPU,
  KVM_GET_LAPIC,
  KVM_GET_MP_STATE,
  KVM_GET_MSRS,
  KVM_GET_REGS,
  KVM_GET_SREGS,
  KVM_GET_TSC_KHZ,
  KVM_GET_VCPU_EVENTS,
  KVM_GET_XCRS,
  KVM_GET_XSAVE,
  KVM_GET_XSAVE2,
  KVM_KVMCLOCK_CTRL,
  KVM_RUN,
  KVM_SET_CPUID2,
  KVM_SET_DEBUGREGS,
  KVM_SET_FPU,
  KVM_SET_LAPIC,
  KVM_SET_MP_STATE,
  KVM_SET_MSRS,
  KVM_SET_REGS,
  KVM_SET_SIGNAL_MASK,
  KVM_SET_SREGS,
  KVM_SET_TSC_KHZ,
  KVM_SET_VCPU_EVENTS,
  KVM_SET_XCRS,
  KVM_SET_XSAVE,
  KVM_TRANSLATE,
} from "../../ffi/ioctl-numbers.ts";
import {
  KVM_DEBUGREGS_LAYOUT,
  KVM_DTABLE_LAYOUT,
  KVM_FPU_LAYOUT,
  KVM_LAPIC_STATE_LAYOUT,
  KVM_MP_STATE_LAYOUT,
  KVM_MSR_ENTRY_LAYOUT,
  KVM_MSRS_LAYOUT,
  KVM_REGS_LAYOUT,
  KVM_REGS_NAMES,
  KVM_SEGMENT_LAYOUT,
  KVM_SIGNAL_MASK_LAYOUT,
  KVM_SREGS_LAYOUT,
  KVM_SREGS_SEGMENTS,
  KVM_TRANSLATION_LAYOUT,
  KVM_VCPU_EVENTS_LAYOUT,
  KVM_XCR_LAYOUT,
  KVM_XCRS_LAYOUT,
  KVM_XSAVE_LAYOUT,
  type RegName,
  type SegmentName,
} from "../../ffi/kvm-structs.ts";
import { addressOf, errno, libc } from "../../ffi/libc.ts";
import type { CpuidTable } from "./cpuid-table.ts";
import { check } from "./kvm-error.ts";
import { KvmRun } from "./kvm-run.ts";

export type Regs = Record<RegName, bigint>;

/** XCR0 (the enabled XSAVE features) from a getXcrs snapshot, or undefined when KVM reported none. */
export function xcr0(xcrs: Uint8Array): bigint | undefined {
  const v = new DataView(xcrs.buffer, xcrs.byteOffset, xcrs.byteLength);
  const n = v.getUint32(KVM_XCRS_LAYOUT.fields.nr_xcrs.offset, true);
  for (let i = 0; i < n; i++) {
    const at = KVM_XCRS_LAYOUT.fields.xcrs.offset + i * KVM_XCR_LAYOUT.size;
    if (v.getUint32(at + KVM_XCR_LAYOUT.fields.xcr.offset, true) === 0)
      return v.getBigUint64(at + KVM_XCR_LAYOUT.fields.value.offset, true);
  }
  return undefined;
}

export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}
const SEGMENT_BYTE_FIELDS = ["type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable"] as const;

export interface DescriptorTable {
  base: bigint;
  limit: number;
}

export type Sregs = Record<SegmentName, Segment> & {
  gdt: DescriptorTable;
  idt: DescriptorTable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apic_base: bigint;
  interrupt_bitmap: Uint8Array;
};
const SREGS_U64 = ["cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base"] as const;

export interface Translation {
  physical: bigint;
  valid: boolean;
  writeable: boolean;
}

function readSegment(v: DataView, at: number): Segment {
  const f = KVM_SEGMENT_LAYOUT.fields;
  const seg = {
    base: v.getBigUint64(at + f.base.offset, true),
    limit: v.getUint32(at + f.limit.offset, true),
    selector: v.getUint16(at + f.selector.offset, true),
  } as Segment;
  for (const k of SEGMENT_BYTE_FIELDS) seg[k] = v.getUint8(at + f[k].offset);
  return seg;
}

function writeSegment(v: DataView, at: number, seg: Segment): void {
  const f = KVM_SEGMENT_LAYOUT.fields;
  v.setBigUint64(at + f.base.offset, seg.base, true);
  v.setUint32(at + f.limit.offset, seg.limit >>> 0, true);
  v.setUint16(at + f.selector.offset, seg.selector, true);
  for (const k of SEGMENT_BYTE_FIELDS) v.setUint8(at + f[k].offset, seg[k]);
}

/**
 * A vCPU fd and its kvm_run area. `fd` and the area's address cross into the vCPU's worker as numbers:
 * the VMM thread maps the area once (`mapKvmRun`), the worker views the same mapping
 * (`new VcpuFd(fd, new KvmRun(address, size))`).
 */
export class VcpuFd {
  private area: KvmRun | undefined;

  constructor(
    readonly fd: number,
    kvmRun?: KvmRun,
  ) {
    this.area = kvmRun;
  }

  /** mmap of this vCPU's kvm_run area (size from KVM_GET_VCPU_MMAP_SIZE); once per vCPU. */
  mapKvmRun(size: number): KvmRun {
    if (this.area) throw new Error(`vCPU fd ${this.fd}: kvm_run is already mapped`);
    this.area = KvmRun.map(this.fd, size);
    return this.area;
  }

  /** The kvm_run area: where KVM_RUN reports each exit (`kvmRun.exit()` decodes it). */
  get kvmRun(): KvmRun {
    if (!this.area) throw new Error(`vCPU fd ${this.fd}: kvm_run is not mapped (mapKvmRun first)`);
    return this.area;
  }

  /**
   * KVM_RUN. Returns 0, or the errno when the ioctl failed (EINTR after a kick, EAGAIN for an AP that
   * waits for SIPI): the run loop decides, so this hot path allocates nothing and throws nothing.
   */
  run(): number {
    return libc.ioctl(this.fd, KVM_RUN, 0) === 0 ? 0 : errno();
  }

  getRegs(): Regs {
    const buf = new BigUint64Array(KVM_REGS_LAYOUT.size / 8);
    check("KVM_GET_REGS", libc.ioctl(this.fd, KVM_GET_REGS, addressOf(buf)));
    const regs = {} as Regs;
    for (const n of KVM_REGS_NAMES) regs[n] = buf[KVM_REGS_LAYOUT.fields[n].offset / 8]!;
    return regs;
  }

  setRegs(regs: Regs): void {
    const buf = new BigUint64Array(KVM_REGS_LAYOUT.size / 8);
    for (const n of KVM_REGS_NAMES) buf[KVM_REGS_LAYOUT.fields[n].offset / 8] = regs[n];
    check("KVM_SET_REGS", libc.ioctl(this.fd, KVM_SET_REGS, addressOf(buf)));
  }

  getSregs(): Sregs {
    const buf = new Uint8Array(KVM_SREGS_LAYOUT.size);
    check("KVM_GET_SREGS", libc.ioctl(this.fd, KVM_GET_SREGS, addressOf(buf)));
    const v = new DataView(buf.buffer);
    const f = KVM_SREGS_LAYOUT.fields;
    const s = {} as Sregs;
    for (const seg of KVM_SREGS_SEGMENTS) s[seg] = readSegment(v, f[seg].offset);
    for (const t of ["gdt", "idt"] as const) {
      s[t] = {
        base: v.getBigUint64(f[t].offset + KVM_DTABLE_LAYOUT.fields.base.offset, true),
        limit: v.getUint16(f[t].offset + KVM_DTABLE_LAYOUT.fields.limit.offset, true),
      };
    }
    for (const r of SREGS_U64) s[r] = v.getBigUint64(f[r].offset, true);
    s.interrupt_bitmap = buf.slice(
      f.interrupt_bitmap.offset,
      f.interrupt_bitmap.offset + f.interrupt_bitmap.size,
    );
    return s;
  }

  setSregs(s: Sregs): void {
    const buf = new Uint8Array(KVM_SREGS_LAYOUT.size);
    const v = new DataView(buf.buffer);
    const f = KVM_SREGS_LAYOUT.fields;
    for (const seg of KVM_SREGS_SEGMENTS) writeSegment(v, f[seg].offset, s[seg]);
    for (const t of ["gdt", "idt"] as const) {
      v.setBigUint64(f[t].offset + KVM_DTABLE_LAYOUT.fields.base.offset, s[t].base, true);
      v.setUint16(f[t].offset + KVM_DTABLE_LAYOUT.fields.limit.offset, s[t].limit, true);
    }
    for (const r of SREGS_U64) v.setBigUint64(f[r].offset, s[r], true);
    buf.set(s.interrupt_bitmap.subarray(0, f.interrupt_bitmap.size), f.interrupt_bitmap.offset);
    check("KVM_SET_SREGS", libc.ioctl(this.fd, KVM_SET_SREGS, addressOf(buf)));
  }

  /** KVM_SET_FPU with FCW and MXCSR set as after FNINIT/reset, everything else zero. */
  setFpu(fcw: number, mxcsr: number): void {
    const buf = new Uint8Array(KVM_FPU_LAYOUT.size);
    const v = new DataView(buf.buffer);
    v.setUint16(KVM_FPU_LAYOUT.fields.fcw.offset, fcw, true);
    v.setUint32(KVM_FPU_LAYOUT.fields.mxcsr.offset, mxcsr, true);
    check("KVM_SET_FPU", libc.ioctl(this.fd, KVM_SET_FPU, addressOf(buf)));
  }

  /** KVM_SET_CPUID2: what CPUID returns inside this guest CPU. */
  setCpuid2(table: CpuidTable): void {
    check("KVM_SET_CPUID2", libc.ioctl(this.fd, KVM_SET_CPUID2, addressOf(table.toKvmCpuid2())));
  }

  /** KVM_SET_MSRS: returns how many entries KVM accepted (it stops at the first it refuses). */
  setMsrs(entries: ReadonlyArray<readonly [index: number, value: bigint]>): number {
    const buf = new Uint8Array(KVM_MSRS_LAYOUT.size + entries.length * KVM_MSR_ENTRY_LAYOUT.size);
    const v = new DataView(buf.buffer);
    v.setUint32(KVM_MSRS_LAYOUT.fields.nmsrs.offset, entries.length, true);
    entries.forEach(([index, value], i) => {
      const at = KVM_MSRS_LAYOUT.fields.entries.offset + i * KVM_MSR_ENTRY_LAYOUT.size;
      v.setUint32(at + KVM_MSR_ENTRY_LAYOUT.fields.index.offset, index, true);
      v.setBigUint64(at + KVM_MSR_ENTRY_LAYOUT.fields.data.offset, value, true);
    });
    return check("KVM_SET_MSRS", libc.ioctl(this.fd, KVM_SET_MSRS, addressOf(buf)));
  }

  /** KVM_GET_LAPIC: the 1 KiB local APIC register page. */
  getLapic(): Uint8Array {
    const buf = new Uint8Array(KVM_LAPIC_STATE_LAYOUT.size);
    check("KVM_GET_LAPIC", libc.ioctl(this.fd, KVM_GET_LAPIC, addressOf(buf)));
    return buf;
  }

  setLapic(regs: Uint8Array): void {
    check("KVM_SET_LAPIC", libc.ioctl(this.fd, KVM_SET_LAPIC, addressOf(regs)));
  }

  getMpState(): number {
    const buf = new Uint32Array(KVM_MP_STATE_LAYOUT.size / 4);
    check("KVM_GET_MP_STATE", libc.ioctl(this.fd, KVM_GET_MP_STATE, addressOf(buf)));
    return buf[0]!;
  }

  setMpState(state: number): void {
    const buf = new Uint32Array([state]);
    check("KVM_SET_MP_STATE", libc.ioctl(this.fd, KVM_SET_MP_STATE, addressOf(buf)));
  }

  /** KVM_GET_REGS as the raw struct kvm_regs: a snapshot to restore with setRegsBytes. */
  getRegsBytes(): Uint8Array {
    return this.getBytes("KVM_GET_REGS", KVM_GET_REGS, KVM_REGS_LAYOUT.size);
  }

  setRegsBytes(state: Uint8Array): void {
    this.setBytes("KVM_SET_REGS", KVM_SET_REGS, state, KVM_REGS_LAYOUT.size);
  }

  /** KVM_GET_SREGS as the raw struct kvm_sregs (getSregs decodes it). */
  getSregsBytes(): Uint8Array {
    return this.getBytes("KVM_GET_SREGS", KVM_GET_SREGS, KVM_SREGS_LAYOUT.size);
  }

  setSregsBytes(state: Uint8Array): void {
    this.setBytes("KVM_SET_SREGS", KVM_SET_SREGS, state, KVM_SREGS_LAYOUT.size);
  }

  /** KVM_GET_FPU: struct kvm_fpu (x87, SSE and MXCSR), a snapshot. */
  getFpu(): Uint8Array {
    return this.getBytes("KVM_GET_FPU", KVM_GET_FPU, KVM_FPU_LAYOUT.size);
  }

  setFpuBytes(state: Uint8Array): void {
    this.setBytes("KVM_SET_FPU", KVM_SET_FPU, state, KVM_FPU_LAYOUT.size);
  }

  /**
   * The XSAVE area: KVM_GET_XSAVE2 into `xsave2Size` bytes when the host has KVM_CAP_XSAVE2
   * (`VmFd.xsave2Size()`, non-zero), else KVM_GET_XSAVE and its 4096 bytes. A snapshot.
   */
  getXsave(xsave2Size: number): Uint8Array {
    if (xsave2Size > 0) {
      const size = Math.max(xsave2Size, KVM_XSAVE_LAYOUT.size);
      return this.getBytes("KVM_GET_XSAVE2", KVM_GET_XSAVE2, size);
    }
    return this.getBytes("KVM_GET_XSAVE", KVM_GET_XSAVE, KVM_XSAVE_LAYOUT.size);
  }

  /** KVM_SET_XSAVE: KVM reads as many bytes as its XSAVE2 size, so pass a getXsave snapshot whole. */
  setXsave(state: Uint8Array): void {
    if (state.byteLength < KVM_XSAVE_LAYOUT.size)
      throw new RangeError(
        `kvm_xsave snapshot is ${state.byteLength} bytes; at least ${KVM_XSAVE_LAYOUT.size}`,
      );
    check("KVM_SET_XSAVE", libc.ioctl(this.fd, KVM_SET_XSAVE, addressOf(state)));
  }

  /** KVM_GET_XCRS: struct kvm_xcrs (`xcr0` reads XCR0), a snapshot. */
  getXcrs(): Uint8Array {
    return this.getBytes("KVM_GET_XCRS", KVM_GET_XCRS, KVM_XCRS_LAYOUT.size);
  }

  setXcrs(state: Uint8Array): void {
    this.setBytes("KVM_SET_XCRS", KVM_SET_XCRS, state, KVM_XCRS_LAYOUT.size);
  }

  /**
   * KVM_GET_MSRS: the values of `indices` (e.g. from Kvm.getMsrIndexList). KVM stops at the first MSR
   * it cannot read, so the result may be shorter than `indices`; setMsrs restores it.
   */
  getMsrs(indices: readonly number[]): Array<[index: number, value: bigint]> {
    const entry = KVM_MSR_ENTRY_LAYOUT;
    const buf = new Uint8Array(KVM_MSRS_LAYOUT.size + indices.length * entry.size);
    const v = new DataView(buf.buffer);
    const at = (i: number) => KVM_MSRS_LAYOUT.fields.entries.offset + i * entry.size;
    v.setUint32(KVM_MSRS_LAYOUT.fields.nmsrs.offset, indices.length, true);
    indices.forEach((index, i) => {
      v.setUint32(at(i) + entry.fields.index.offset, index, true);
    });
    const read = check("KVM_GET_MSRS", libc.ioctl(this.fd, KVM_GET_MSRS, addressOf(buf)));
    return indices
      .slice(0, read)
      .map((index, i) => [index, v.getBigUint64(at(i) + entry.fields.data.offset, true)] as [number, bigint]);
  }

  /** KVM_GET_VCPU_EVENTS: pending exception, interrupt, NMI, SIPI and SMI state, a snapshot. */
  getVcpuEvents(): Uint8Array {
    return this.getBytes("KVM_GET_VCPU_EVENTS", KVM_GET_VCPU_EVENTS, KVM_VCPU_EVENTS_LAYOUT.size);
  }

  setVcpuEvents(state: Uint8Array): void {
    this.setBytes("KVM_SET_VCPU_EVENTS", KVM_SET_VCPU_EVENTS, state, KVM_VCPU_EVENTS_LAYOUT.size);
  }

  /** KVM_GET_DEBUGREGS: DR0-3, DR6, DR7, a snapshot. */
  getDebugregs(): Uint8Array {
    return this.getBytes("KVM_GET_DEBUGREGS", KVM_GET_DEBUGREGS, KVM_DEBUGREGS_LAYOUT.size);
  }

  setDebugregs(state: Uint8Array): void {
    this.setBytes("KVM_SET_DEBUGREGS", KVM_SET_DEBUGREGS, state, KVM_DEBUGREGS_LAYOUT.size);
  }

  /** KVM_GET_TSC_KHZ: the guest TSC frequency in kHz. */
  getTscKhz(): number {
    return check("KVM_GET_TSC_KHZ", libc.ioctl(this.fd, KVM_GET_TSC_KHZ, 0));
  }

  /** KVM_SET_TSC_KHZ: scales the guest TSC (needs KVM_CAP_TSC_CONTROL for a rate other than the host's). */
  setTscKhz(khz: number): void {
    check("KVM_SET_TSC_KHZ", libc.ioctl(this.fd, KVM_SET_TSC_KHZ, khz));
  }

  /**
   * KVM_KVMCLOCK_CTRL: tells the guest (through kvmclock's PVCLOCK_GUEST_STOPPED flag) that the VMM
   * stopped it, so its soft-lockup watchdog does not fire after a pause. EINVAL when the guest has not
   * enabled kvmclock.
   */
  kvmclockCtrl(): void {
    check("KVM_KVMCLOCK_CTRL", libc.ioctl(this.fd, KVM_KVMCLOCK_CTRL, 0));
  }

  private getBytes(call: string, request: number, size: number): Uint8Array {
    const buf = new Uint8Array(size);
    check(call, libc.ioctl(this.fd, request, addressOf(buf)));
    return buf;
  }

  private setBytes(call: string, request: number, state: Uint8Array, size: number): void {
    if (state.byteLength !== size)
      throw new RangeError(`${call}: the snapshot is ${state.byteLength} bytes; the struct is ${size}`);
    check(call, libc.ioctl(this.fd, request, addressOf(state)));
  }

  /** KVM_SET_SIGNAL_MASK: the signal mask in force only while inside KVM_RUN (kernel sigset bytes). */
  setSignalMask(sigset: Uint8Array): void {
    const buf = new Uint8Array(KVM_SIGNAL_MASK_LAYOUT.size + sigset.length);
    new DataView(buf.buffer).setUint32(KVM_SIGNAL_MASK_LAYOUT.fields.len.offset, sigset.length, true);
    buf.set(sigset, KVM_SIGNAL_MASK_LAYOUT.fields.sigset.offset);
    check("KVM_SET_SIGNAL_MASK", libc.ioctl(this.fd, KVM_SET_SIGNAL_MASK, addressOf(buf)));
  }

  /** KVM_TRANSLATE: guest-linear to guest-physical through the vCPU's current page tables. */
  translate(linear: bigint): Translation {
    const buf = new Uint8Array(KVM_TRANSLATION_LAYOUT.size);
    const v = new DataView(buf.buffer);
    const f = KVM_TRANSLATION_LAYOUT.fields;
    v.setBigUint64(f.linear_address.offset, linear, true);
    check("KVM_TRANSLATE", libc.ioctl(this.fd, KVM_TRANSLATE, addressOf(buf)));
    return {
      physical: v.getBigUint64(f.physical_address.offset, true),
      valid: v.getUint8(f.valid.offset) !== 0,
      writeable: v.getUint8(f.writeable.offset) !== 0,
    };
  }

  close(): void {
    libc.close(this.fd);
  }
}
