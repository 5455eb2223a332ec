/** Sregs as KVM_CREATE_VCPU leaves them, for the pure entry-state functions' tests. */
import type { Segment, Sregs } from "../../src/kvm/vcpu-fd.ts";

/** A vCPU's sregs right after KVM_CREATE_VCPU (KVM's reset values, the ones that matter here). */
export function resetSregs(): Sregs {
  const seg = (selector: number, type: number, s: number): Segment => ({
    base: 0n,
    limit: 0xffff,
    selector,
    type,
    present: 1,
    dpl: 0,
    db: 0,
    s,
    l: 0,
    g: 0,
    avl: 0,
    unusable: 0,
  });
  return {
    cs: { ...seg(0xf000, 0xb, 1), base: 0xffff0000n },
    ds: seg(0, 3, 1),
    es: seg(0, 3, 1),
    fs: seg(0, 3, 1),
    gs: seg(0, 3, 1),
    ss: seg(0, 3, 1),
    tr: seg(0, 0xb, 0),
    ldt: seg(0, 2, 0),
    gdt: { base: 0n, limit: 0xffff },
    idt: { base: 0n, limit: 0xffff },
    cr0: 0x6000_0010n,
    cr2: 0n,
    cr3: 0n,
    cr4: 0n,
    cr8: 0n,
    efer: 0n,
    apic_base: 0xfee0_0900n,
    interrupt_bitmap: new Uint8Array(32),
  };
}
