/**
 * The boot GDT of the 64-bit bzImage entry (Intel SDM Vol. 3A §3.4.5 segment descriptors, §5.2.1
 * code-segment descriptors in IA-32e mode; boot.rst "64-bit BOOT PROTOCOL": a GDT with __BOOT_CS 0x10
 * execute/read and __BOOT_DS 0x18 read/write, both 4 GiB flat). The segment registers KVM is given are
 * decoded from these same descriptors, so the hidden parts always match what a reload would read.
 */
import type { Segment } from "../../kvm/vcpu-fd.ts";
import { BOOT_CS_SELECTOR, BOOT_DS_SELECTOR } from "./cpu-state.ts";

/** Descriptor flag words, laid out as bits 40..55 of a descriptor (type, S, DPL, P, AVL, L, D/B, G). */
const DESC_G = 0x8000;
const DESC_DB = 0x4000;
const DESC_L = 0x2000;
const DESC_P = 0x0080;
const DESC_S = 0x0010;
const TYPE_CODE_XR_ACCESSED = 0xb;
const TYPE_DATA_RW_ACCESSED = 0x3;
/** A limit of 0xfffff pages is 4 GiB with G set. */
const FLAT_LIMIT_PAGES = 0xf_ffff;

/** 64-bit code: P, DPL 0, S, execute/read accessed, L = 1 (D/B must be 0 with L), G (0x00af9b000000ffff). */
export const BOOT_CODE64_FLAGS = DESC_G | DESC_L | DESC_P | DESC_S | TYPE_CODE_XR_ACCESSED;
/** Data: P, DPL 0, S, read/write accessed, D/B = 1, G (0x00cf93000000ffff). */
export const BOOT_DATA_FLAGS = DESC_G | DESC_DB | DESC_P | DESC_S | TYPE_DATA_RW_ACCESSED;

/** Encodes one 8-byte segment descriptor. */
export function gdtEntry(flags: number, base: number, limit: number): bigint {
  const b = BigInt(base);
  const l = BigInt(limit);
  const f = BigInt(flags);
  return (
    ((b & 0xff00_0000n) << 32n) |
    ((f & 0xf0ffn) << 40n) |
    ((l & 0xf_0000n) << 32n) |
    ((b & 0xff_ffffn) << 16n) |
    (l & 0xffffn)
  );
}

/** The boot GDT, indexed by selector >> 3: null, null (Linux's layout), __BOOT_CS, __BOOT_DS. */
export const BOOT_GDT: readonly bigint[] = (() => {
  const gdt = [0n, 0n, 0n, 0n];
  gdt[BOOT_CS_SELECTOR >> 3] = gdtEntry(BOOT_CODE64_FLAGS, 0, FLAT_LIMIT_PAGES);
  gdt[BOOT_DS_SELECTOR >> 3] = gdtEntry(BOOT_DATA_FLAGS, 0, FLAT_LIMIT_PAGES);
  return gdt;
})();

/** The GDTR limit for BOOT_GDT (size in bytes − 1). */
export const BOOT_GDT_LIMIT = BOOT_GDT.length * 8 - 1;

/** BOOT_GDT as the bytes to write at BOOT_GDT_ADDRESS. */
export function bootGdtBytes(): Uint8Array {
  const out = new Uint8Array(BOOT_GDT.length * 8);
  const v = new DataView(out.buffer);
  BOOT_GDT.forEach((d, i) => {
    v.setBigUint64(i * 8, d, true);
  });
  return out;
}

/** The segment-register state (KVM's kvm_segment) a CPU would load from `descriptor` via `selector`. */
export function segmentFromDescriptor(descriptor: bigint, selector: number): Segment {
  const bits = (shift: bigint, mask: bigint) => Number((descriptor >> shift) & mask);
  const g = bits(55n, 1n);
  const rawLimit = bits(0n, 0xffffn) | (bits(48n, 0xfn) << 16);
  const present = bits(47n, 1n);
  return {
    base: BigInt(bits(16n, 0xff_ffffn) + bits(56n, 0xffn) * 0x100_0000),
    limit: g ? rawLimit * 0x1000 + 0xfff : rawLimit,
    selector,
    type: bits(40n, 0xfn),
    s: bits(44n, 1n),
    dpl: bits(45n, 3n),
    present,
    avl: bits(52n, 1n),
    l: bits(53n, 1n),
    db: bits(54n, 1n),
    g,
    unusable: present ? 0 : 1,
  };
}

/** The segment a selector names in BOOT_GDT. */
export function bootSegment(selector: number): Segment {
  const d = BOOT_GDT[selector >> 3];
  if (d === undefined) throw new RangeError(`selector ${selector} is outside the boot GDT`);
  return segmentFromDescriptor(d, selector);
}
