/**
 * Initial register state for a boot vCPU (Intel SDM Vol. 3A §3.4.5 segment descriptors, §9.9 mode
 * switching). Pure functions over KVM's register structs: the builder applies them.
 */
import type { Regs, Segment, Sregs } from "../../kvm/vcpu-fd.ts";

/** GDT selectors the boot protocols and our raw format use (Linux's __BOOT_CS / __BOOT_DS). */
export const BOOT_CS_SELECTOR = 0x10;
export const BOOT_DS_SELECTOR = 0x18;
/** Segment descriptor types: execute/read code and read/write data, both "accessed". */
const SEG_TYPE_CODE_XR_ACCESSED = 0xb;
const SEG_TYPE_DATA_RW_ACCESSED = 0x3;
const FLAT_LIMIT = 0xffff_ffff;
export const CR0_PE = 1n;
export const CR0_ET = 1n << 4n;
/** CR0.PG: paging. Here, not in long-mode.ts, so a vCPU worker's crash report needs no boot code. */
export const CR0_PG = 1n << 31n;
/** RFLAGS bit 1 is reserved and always set. */
export const RFLAGS_RESERVED = 0x2n;
/** FPU control word and MXCSR after FNINIT / reset (Intel SDM Vol. 1 §8.1.5, §10.2.3.1). */
export const FPU_FCW_RESET = 0x37f;
export const MXCSR_RESET = 0x1f80;

function flatSegment(selector: number, type: number): Segment {
  return {
    base: 0n,
    limit: FLAT_LIMIT,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: 1,
    s: 1,
    l: 0,
    g: 1,
    avl: 0,
    unusable: 0,
  };
}

/** 32-bit protected mode, flat 4 GiB segments, paging off (the PVH and raw entry state). */
export function flatProtectedModeSregs(current: Sregs): Sregs {
  const code = flatSegment(BOOT_CS_SELECTOR, SEG_TYPE_CODE_XR_ACCESSED);
  const data = flatSegment(BOOT_DS_SELECTOR, SEG_TYPE_DATA_RW_ACCESSED);
  return {
    ...current,
    cs: code,
    ds: data,
    es: data,
    fs: data,
    gs: data,
    ss: data,
    cr0: (current.cr0 | CR0_PE | CR0_ET) & ~(1n << 31n),
  };
}

/** All general registers zero except the ones given; RFLAGS has only its reserved bit. */
export function initialRegs(set: Partial<Regs>): Regs {
  const zero = {
    rax: 0n,
    rbx: 0n,
    rcx: 0n,
    rdx: 0n,
    rsi: 0n,
    rdi: 0n,
    rsp: 0n,
    rbp: 0n,
    r8: 0n,
    r9: 0n,
    r10: 0n,
    r11: 0n,
    r12: 0n,
    r13: 0n,
    r14: 0n,
    r15: 0n,
    rip: 0n,
    rflags: RFLAGS_RESERVED,
  };
  return { ...zero, ...set };
}
