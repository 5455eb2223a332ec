/**
 * MADT, signature "APIC" (ACPI 6.5 §5.2.12): the interrupt controllers the guest has. One Processor Local
 * APIC entry per possible CPU (boot CPUs Enabled, the rest Online Capable so Linux keeps them as
 * hot-pluggable, Linux aa06e20f1be6), KVM's in-kernel IOAPIC, the PIT's interrupt source override and
 * LINT1 as NMI on every CPU.
 * @module
 */
import { IOAPIC_BASE, LAPIC_BASE } from "../layout.ts";
import { AcpiError } from "./acpi-error.ts";
import { buildSdt, LITTLE_ENDIAN, SDT_HEADER } from "./sdt-header.ts";
import { checkVcpuCounts, type VcpuCounts, XAPIC_MAX_CPUS } from "./vcpu-counts.ts";

/** The MADT's signature, also its key in AcpiTables. */
export const MADT_SIGNATURE = "APIC";
/** Revision 5 (ACPI 6.3+): the first whose Local APIC flags define Online Capable. */
export const MADT_REVISION = 5;

/** Byte offsets after the header (Table 5.19). */
export const MADT = {
  LOCAL_APIC_ADDRESS: SDT_HEADER.SIZE,
  FLAGS: SDT_HEADER.SIZE + 4,
  ENTRIES: SDT_HEADER.SIZE + 8,
} as const;
/** MADT flags: the machine also has dual 8259 PICs (KVM's in-kernel irqchip has them). */
export const MADT_PCAT_COMPAT = 1 << 0;

/** Interrupt controller structure types (Table 5.21). */
export const MadtEntryType = {
  LocalApic: 0,
  IoApic: 1,
  InterruptSourceOverride: 2,
  LocalApicNmi: 4,
} as const;
/** Every entry starts with its type and its length. */
const ENTRY = { TYPE: 0, LENGTH: 1 } as const;

/** Processor Local APIC structure (§5.2.12.2, Table 5.22). */
export const LOCAL_APIC = { PROCESSOR_UID: 2, APIC_ID: 3, FLAGS: 4, SIZE: 8 } as const;
/** Local APIC flag (Table 5.23) Enabled: the CPU is usable now (boot CPUs, and every CPU's _MAT). */
export const LOCAL_APIC_ENABLED = 1 << 0;
/** Local APIC flag Online Capable: may be enabled at run time (hot-pluggable CPUs; ACPI 6.3+). */
export const LOCAL_APIC_ONLINE_CAPABLE = 1 << 1;

/** I/O APIC structure (§5.2.12.3, Table 5.24). */
export const IO_APIC = { ID: 2, RESERVED: 3, ADDRESS: 4, GSI_BASE: 8, SIZE: 12 } as const;
/** KVM's in-kernel IOAPIC resets its id register to 0 (virt/kvm/ioapic.c, kvm_ioapic_reset). */
export const IOAPIC_ID = 0;
/** The IOAPIC's first input is GSI 0: ISA IRQ n is GSI n unless overridden. */
export const IOAPIC_GSI_BASE = 0;

/** Interrupt Source Override structure (§5.2.12.5, Table 5.25). */
export const INTERRUPT_SOURCE_OVERRIDE = { BUS: 2, SOURCE: 3, GSI: 4, FLAGS: 8, SIZE: 10 } as const;
const BUS_ISA = 0;
/** MPS INTI flags 0: polarity and trigger conform to the bus (ISA: active high, edge). */
const MPS_INTI_CONFORMS = 0;
/** The PIT raises ISA IRQ 0 ... */
export const PIT_ISA_IRQ = 0;
/** ... which reaches IOAPIC pin 2, as on PCs and in KVM's default routing, hence the override. */
export const PIT_GSI = 2;

/** Local APIC NMI structure (§5.2.12.7, Table 5.27). */
export const LOCAL_APIC_NMI = { PROCESSOR_UID: 2, FLAGS: 3, LINT: 5, SIZE: 6 } as const;
/** Processor UID 0xff means every processor. */
export const ALL_PROCESSORS = 0xff;
/** LINT1 is wired to NMI, as the kernel's own LVT1 setup expects. */
const NMI_LINT = 1;

/** A Processor Local APIC entry for `cpu` (APIC id and ACPI UID = cpu): the MADT's, and each CPU's _MAT. */
export function localApicEntry(cpu: number, flags: number): Uint8Array {
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= XAPIC_MAX_CPUS) {
    throw new AcpiError("MADT Local APIC id", cpu, `must be an integer from 0 to ${XAPIC_MAX_CPUS - 1}`);
  }
  const bytes = new Uint8Array(LOCAL_APIC.SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint8(ENTRY.TYPE, MadtEntryType.LocalApic);
  view.setUint8(ENTRY.LENGTH, LOCAL_APIC.SIZE);
  view.setUint8(LOCAL_APIC.PROCESSOR_UID, cpu);
  view.setUint8(LOCAL_APIC.APIC_ID, cpu);
  view.setUint32(LOCAL_APIC.FLAGS, flags, LITTLE_ENDIAN);
  return bytes;
}

function ioApicEntry(): Uint8Array {
  const bytes = new Uint8Array(IO_APIC.SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint8(ENTRY.TYPE, MadtEntryType.IoApic);
  view.setUint8(ENTRY.LENGTH, IO_APIC.SIZE);
  view.setUint8(IO_APIC.ID, IOAPIC_ID);
  view.setUint32(IO_APIC.ADDRESS, IOAPIC_BASE, LITTLE_ENDIAN);
  view.setUint32(IO_APIC.GSI_BASE, IOAPIC_GSI_BASE, LITTLE_ENDIAN);
  return bytes;
}

function interruptSourceOverride(isaIrq: number, gsi: number): Uint8Array {
  const bytes = new Uint8Array(INTERRUPT_SOURCE_OVERRIDE.SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint8(ENTRY.TYPE, MadtEntryType.InterruptSourceOverride);
  view.setUint8(ENTRY.LENGTH, INTERRUPT_SOURCE_OVERRIDE.SIZE);
  view.setUint8(INTERRUPT_SOURCE_OVERRIDE.BUS, BUS_ISA);
  view.setUint8(INTERRUPT_SOURCE_OVERRIDE.SOURCE, isaIrq);
  view.setUint32(INTERRUPT_SOURCE_OVERRIDE.GSI, gsi, LITTLE_ENDIAN);
  view.setUint16(INTERRUPT_SOURCE_OVERRIDE.FLAGS, MPS_INTI_CONFORMS, LITTLE_ENDIAN);
  return bytes;
}

function localApicNmi(): Uint8Array {
  const bytes = new Uint8Array(LOCAL_APIC_NMI.SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint8(ENTRY.TYPE, MadtEntryType.LocalApicNmi);
  view.setUint8(ENTRY.LENGTH, LOCAL_APIC_NMI.SIZE);
  view.setUint8(LOCAL_APIC_NMI.PROCESSOR_UID, ALL_PROCESSORS);
  view.setUint16(LOCAL_APIC_NMI.FLAGS, MPS_INTI_CONFORMS, LITTLE_ENDIAN);
  view.setUint8(LOCAL_APIC_NMI.LINT, NMI_LINT);
  return bytes;
}

/** Local APIC flags of `cpu`: Enabled for boot CPUs; only Online Capable for the others (ACPI 6.3+ says not both). */
export function localApicFlags(cpu: number, bootVcpus: number): number {
  return cpu < bootVcpus ? LOCAL_APIC_ENABLED : LOCAL_APIC_ONLINE_CAPABLE;
}

/** Builds the MADT for CPUs 0..maxVcpus-1, of which 0..bootVcpus-1 are enabled. */
export function buildMadt(counts: VcpuCounts): Uint8Array {
  checkVcpuCounts(counts);
  const entries: Uint8Array[] = [];
  for (let cpu = 0; cpu < counts.maxVcpus; cpu++)
    entries.push(localApicEntry(cpu, localApicFlags(cpu, counts.bootVcpus)));
  entries.push(ioApicEntry(), interruptSourceOverride(PIT_ISA_IRQ, PIT_GSI), localApicNmi());
  const length = entries.reduce((sum, e) => sum + e.length, MADT.ENTRIES);
  return buildSdt(MADT_SIGNATURE, MADT_REVISION, length, (view, bytes) => {
    view.setUint32(MADT.LOCAL_APIC_ADDRESS, LAPIC_BASE, LITTLE_ENDIAN);
    view.setUint32(MADT.FLAGS, MADT_PCAT_COMPAT, LITTLE_ENDIAN);
    let offset = MADT.ENTRIES;
    for (const e of entries) {
      bytes.set(e, offset);
      offset += e.length;
    }
  });
}
