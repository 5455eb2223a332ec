/**
 * Local APIC set-up before a vCPU first runs (Intel SDM Vol. 3A §11.5.1, "Local Vector Table"): LINT0
 * delivers ExtINT (the 8259 PIC's output, so legacy-PIC interrupts reach the CPU in virtual-wire mode)
 * and LINT1 delivers NMI, as on a PC and as Firecracker and cloud-hypervisor configure it. Works on the
 * 1 KiB register page of KVM_GET_LAPIC / KVM_SET_LAPIC, whose offsets are the APIC's own.
 */

/** LVT registers' offsets in the APIC page (names as in Linux's apicdef.h). */
export const APIC_LVT0 = 0x350;
export const APIC_LVT1 = 0x360;
/** LVT delivery mode field, bits 10:8. */
export const APIC_DELIVERY_MODE_SHIFT = 8;
export const APIC_DELIVERY_MODE_MASK = 0x7 << APIC_DELIVERY_MODE_SHIFT;
export const APIC_MODE_FIXED = 0x0;
export const APIC_MODE_NMI = 0x4;
export const APIC_MODE_EXTINT = 0x7;

/** `lvt` with its delivery mode replaced by `mode`; vector, mask and trigger bits are kept. */
export function setDeliveryMode(lvt: number, mode: number): number {
  return ((lvt & ~APIC_DELIVERY_MODE_MASK) | (mode << APIC_DELIVERY_MODE_SHIFT)) >>> 0;
}

/** A copy of a KVM_GET_LAPIC page with LVT LINT0 = ExtINT and LINT1 = NMI, ready for KVM_SET_LAPIC. */
export function lapicWithLint(regs: Uint8Array): Uint8Array {
  const out = regs.slice();
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  v.setUint32(APIC_LVT0, setDeliveryMode(v.getUint32(APIC_LVT0, true), APIC_MODE_EXTINT), true);
  v.setUint32(APIC_LVT1, setDeliveryMode(v.getUint32(APIC_LVT1, true), APIC_MODE_NMI), true);
  return out;
}
