/**
 * Byte layouts of the <linux/kvm.h> structs bunvmm passes to ioctls, declared once as named offsets.
 *
 * Keys are the C member paths (`"io.port"` is `kvm_run.io.port`), so test/ffi/kvm-structs.test.ts can
 * generate a C program that prints `offsetof`/`sizeof` for every entry and compare it with this file.
 * A size of 0 marks a flexible array member (only its offset is checked).
 */
import { type CLayout, cLayout } from "./layout.ts";

/** A <linux/kvm.h> struct by its tag: `struct("kvm_run", ...)` is `struct kvm_run`. */
function struct<const K extends string>(
  tag: string,
  size: number,
  fields: { readonly [P in K]: readonly [offset: number, size: number] },
): CLayout<K> {
  return cLayout(`struct ${tag}`, size, fields);
}

/** The shared page KVM_RUN fills in (mmap of the vCPU fd); only the union members we decode. */
export const KVM_RUN_LAYOUT = struct("kvm_run", 2352, {
  request_interrupt_window: [0, 1],
  immediate_exit: [1, 1],
  exit_reason: [8, 4],
  ready_for_interrupt_injection: [12, 1],
  if_flag: [13, 1],
  flags: [14, 2],
  cr8: [16, 8],
  apic_base: [24, 8],
  "hw.hardware_exit_reason": [32, 8],
  "fail_entry.hardware_entry_failure_reason": [32, 8],
  "fail_entry.cpu": [40, 4],
  "io.direction": [32, 1],
  "io.size": [33, 1],
  "io.port": [34, 2],
  "io.count": [36, 4],
  "io.data_offset": [40, 8],
  "mmio.phys_addr": [32, 8],
  "mmio.data": [40, 8],
  "mmio.len": [48, 4],
  "mmio.is_write": [52, 1],
  "internal.suberror": [32, 4],
  "internal.ndata": [36, 4],
  "internal.data": [40, 128],
  "system_event.type": [32, 4],
  "system_event.ndata": [36, 4],
  "system_event.data": [40, 128],
});

/** General-purpose registers, in kernel order (KVM_GET_REGS / KVM_SET_REGS). */
export const KVM_REGS_NAMES = [
  "rax",
  "rbx",
  "rcx",
  "rdx",
  "rsi",
  "rdi",
  "rsp",
  "rbp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
  "rflags",
] as const;
export type RegName = (typeof KVM_REGS_NAMES)[number];

export const KVM_REGS_LAYOUT = struct(
  "kvm_regs",
  144,
  Object.fromEntries(KVM_REGS_NAMES.map((n, i) => [n, [i * 8, 8] as const])) as {
    [P in RegName]: readonly [number, number];
  },
);

export const KVM_SEGMENT_LAYOUT = struct("kvm_segment", 24, {
  base: [0, 8],
  limit: [8, 4],
  selector: [12, 2],
  type: [14, 1],
  present: [15, 1],
  dpl: [16, 1],
  db: [17, 1],
  s: [18, 1],
  l: [19, 1],
  g: [20, 1],
  avl: [21, 1],
  unusable: [22, 1],
});

export const KVM_DTABLE_LAYOUT = struct("kvm_dtable", 16, { base: [0, 8], limit: [8, 2] });

export const KVM_SREGS_SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;
export type SegmentName = (typeof KVM_SREGS_SEGMENTS)[number];

export const KVM_SREGS_LAYOUT = struct("kvm_sregs", 312, {
  cs: [0, 24],
  ds: [24, 24],
  es: [48, 24],
  fs: [72, 24],
  gs: [96, 24],
  ss: [120, 24],
  tr: [144, 24],
  ldt: [168, 24],
  gdt: [192, 16],
  idt: [208, 16],
  cr0: [224, 8],
  cr2: [232, 8],
  cr3: [240, 8],
  cr4: [248, 8],
  cr8: [256, 8],
  efer: [264, 8],
  apic_base: [272, 8],
  interrupt_bitmap: [280, 32],
});

export const KVM_FPU_LAYOUT = struct("kvm_fpu", 416, {
  fpr: [0, 128],
  fcw: [128, 2],
  fsw: [130, 2],
  ftwx: [132, 1],
  last_opcode: [134, 2],
  last_ip: [136, 8],
  last_dp: [144, 8],
  xmm: [152, 256],
  mxcsr: [408, 4],
});

export const KVM_USERSPACE_MEMORY_REGION_LAYOUT = struct("kvm_userspace_memory_region", 32, {
  slot: [0, 4],
  flags: [4, 4],
  guest_phys_addr: [8, 8],
  memory_size: [16, 8],
  userspace_addr: [24, 8],
});

export const KVM_CPUID_ENTRY2_LAYOUT = struct("kvm_cpuid_entry2", 40, {
  function: [0, 4],
  index: [4, 4],
  flags: [8, 4],
  eax: [12, 4],
  ebx: [16, 4],
  ecx: [20, 4],
  edx: [24, 4],
});

export const KVM_CPUID2_LAYOUT = struct("kvm_cpuid2", 8, { nent: [0, 4], entries: [8, 0] });

export const KVM_MSR_ENTRY_LAYOUT = struct("kvm_msr_entry", 16, {
  index: [0, 4],
  reserved: [4, 4],
  data: [8, 8],
});

export const KVM_MSRS_LAYOUT = struct("kvm_msrs", 8, { nmsrs: [0, 4], entries: [8, 0] });

export const KVM_LAPIC_STATE_LAYOUT = struct("kvm_lapic_state", 1024, { regs: [0, 1024] });

export const KVM_IRQ_LEVEL_LAYOUT = struct("kvm_irq_level", 8, { irq: [0, 4], level: [4, 4] });

export const KVM_PIT_CONFIG_LAYOUT = struct("kvm_pit_config", 64, { flags: [0, 4] });

export const KVM_MP_STATE_LAYOUT = struct("kvm_mp_state", 4, { mp_state: [0, 4] });

export const KVM_SIGNAL_MASK_LAYOUT = struct("kvm_signal_mask", 4, { len: [0, 4], sigset: [4, 0] });

export const KVM_TRANSLATION_LAYOUT = struct("kvm_translation", 24, {
  linear_address: [0, 8],
  physical_address: [8, 8],
  valid: [16, 1],
  writeable: [17, 1],
  usermode: [18, 1],
});

/** x87/SSE/AVX state in the XSAVE format; KVM_GET_XSAVE2 may return more than `region` (KVM_CAP_XSAVE2). */
export const KVM_XSAVE_LAYOUT = struct("kvm_xsave", 4096, { region: [0, 4096], extra: [4096, 0] });

/** One extended control register (XCR0 is index 0). */
export const KVM_XCR_LAYOUT = struct("kvm_xcr", 16, { xcr: [0, 4], reserved: [4, 4], value: [8, 8] });

/** KVM_MAX_XCRS (16) entries. */
export const KVM_XCRS_LAYOUT = struct("kvm_xcrs", 392, {
  nr_xcrs: [0, 4],
  flags: [4, 4],
  xcrs: [8, 256],
  padding: [264, 128],
});

/** Pending exception, interrupt, NMI, SIPI and SMI state of a vCPU (KVM_GET/SET_VCPU_EVENTS). */
export const KVM_VCPU_EVENTS_LAYOUT = struct("kvm_vcpu_events", 64, {
  "exception.injected": [0, 1],
  "exception.nr": [1, 1],
  "exception.has_error_code": [2, 1],
  "exception.pending": [3, 1],
  "exception.error_code": [4, 4],
  "interrupt.injected": [8, 1],
  "interrupt.nr": [9, 1],
  "interrupt.soft": [10, 1],
  "interrupt.shadow": [11, 1],
  "nmi.injected": [12, 1],
  "nmi.pending": [13, 1],
  "nmi.masked": [14, 1],
  sipi_vector: [16, 4],
  flags: [20, 4],
  "smi.smm": [24, 1],
  "smi.pending": [25, 1],
  "smi.smm_inside_nmi": [26, 1],
  "smi.latched_init": [27, 1],
  "triple_fault.pending": [28, 1],
  reserved: [29, 26],
  exception_has_payload: [55, 1],
  exception_payload: [56, 8],
});

export const KVM_DEBUGREGS_LAYOUT = struct("kvm_debugregs", 128, {
  db: [0, 32],
  dr6: [32, 8],
  dr7: [40, 8],
  flags: [48, 8],
  reserved: [56, 72],
});

/** KVM_GET_MSR_INDEX_LIST: `nmsrs` in (room) and out (count), then the u32 MSR indices. */
export const KVM_MSR_LIST_LAYOUT = struct("kvm_msr_list", 4, { nmsrs: [0, 4], indices: [4, 0] });

/** One 8259A PIC (KVM_IRQCHIP_PIC_MASTER / _SLAVE). */
export const KVM_PIC_STATE_LAYOUT = struct("kvm_pic_state", 16, {
  last_irr: [0, 1],
  irr: [1, 1],
  imr: [2, 1],
  isr: [3, 1],
  priority_add: [4, 1],
  irq_base: [5, 1],
  read_reg_select: [6, 1],
  poll: [7, 1],
  special_mask: [8, 1],
  init_state: [9, 1],
  auto_eoi: [10, 1],
  rotate_on_auto_eoi: [11, 1],
  special_fully_nested_mode: [12, 1],
  init4: [13, 1],
  elcr: [14, 1],
  elcr_mask: [15, 1],
});

/** The IOAPIC (KVM_IRQCHIP_IOAPIC): `irr` has one bit per pin, `redirtbl` 24 u64 entries. */
export const KVM_IOAPIC_STATE_LAYOUT = struct("kvm_ioapic_state", 216, {
  base_address: [0, 8],
  ioregsel: [8, 4],
  id: [12, 4],
  irr: [16, 4],
  pad: [20, 4],
  redirtbl: [24, 192],
});

/** KVM_GET/SET_IRQCHIP: `chip_id` selects which chip's state fills the 512-byte union. */
export const KVM_IRQCHIP_LAYOUT = struct("kvm_irqchip", 520, {
  chip_id: [0, 4],
  pad: [4, 4],
  chip: [8, 512],
  "chip.pic": [8, 16],
  "chip.ioapic": [8, 216],
});

export const KVM_PIT_CHANNEL_STATE_LAYOUT = struct("kvm_pit_channel_state", 24, {
  count: [0, 4],
  latched_count: [4, 2],
  count_latched: [6, 1],
  status_latched: [7, 1],
  status: [8, 1],
  read_state: [9, 1],
  write_state: [10, 1],
  write_latch: [11, 1],
  rw_mode: [12, 1],
  mode: [13, 1],
  bcd: [14, 1],
  gate: [15, 1],
  count_load_time: [16, 8],
});

/** The in-kernel i8254: three channels (KVM_GET/SET_PIT2). */
export const KVM_PIT_STATE2_LAYOUT = struct("kvm_pit_state2", 112, {
  channels: [0, 72],
  flags: [72, 4],
  reserved: [76, 36],
});

/** kvmclock's base (KVM_GET/SET_CLOCK): nanoseconds, with realtime/host_tsc when flags say so. */
export const KVM_CLOCK_DATA_LAYOUT = struct("kvm_clock_data", 48, {
  clock: [0, 8],
  flags: [8, 4],
  pad0: [12, 4],
  realtime: [16, 8],
  host_tsc: [24, 8],
  pad: [32, 16],
});

/** KVM_IOEVENTFD: a guest write of `len` bytes to `addr` (matching `datamatch` if flagged) signals `fd`. */
export const KVM_IOEVENTFD_LAYOUT = struct("kvm_ioeventfd", 64, {
  datamatch: [0, 8],
  addr: [8, 8],
  len: [16, 4],
  fd: [20, 4],
  flags: [24, 4],
  pad: [28, 36],
});

/** KVM_IRQFD: a write to `fd` raises `gsi`; with KVM_IRQFD_FLAG_RESAMPLE, `resamplefd` is signalled on EOI. */
export const KVM_IRQFD_LAYOUT = struct("kvm_irqfd", 32, {
  fd: [0, 4],
  gsi: [4, 4],
  flags: [8, 4],
  resamplefd: [12, 4],
  pad: [16, 16],
});

/** KVM_GET_DIRTY_LOG: `dirty_bitmap` points at one bit per page of `slot`, filled and cleared by KVM. */
export const KVM_DIRTY_LOG_LAYOUT = struct("kvm_dirty_log", 16, {
  slot: [0, 4],
  padding1: [4, 4],
  dirty_bitmap: [8, 8],
});

/** Every layout above, for the header check. */
export const ALL_LAYOUTS: readonly CLayout[] = [
  KVM_RUN_LAYOUT,
  KVM_REGS_LAYOUT,
  KVM_SEGMENT_LAYOUT,
  KVM_DTABLE_LAYOUT,
  KVM_SREGS_LAYOUT,
  KVM_FPU_LAYOUT,
  KVM_USERSPACE_MEMORY_REGION_LAYOUT,
  KVM_CPUID_ENTRY2_LAYOUT,
  KVM_CPUID2_LAYOUT,
  KVM_MSR_ENTRY_LAYOUT,
  KVM_MSRS_LAYOUT,
  KVM_LAPIC_STATE_LAYOUT,
  KVM_IRQ_LEVEL_LAYOUT,
  KVM_PIT_CONFIG_LAYOUT,
  KVM_MP_STATE_LAYOUT,
  KVM_SIGNAL_MASK_LAYOUT,
  KVM_TRANSLATION_LAYOUT,
  KVM_XSAVE_LAYOUT,
  KVM_XCR_LAYOUT,
  KVM_XCRS_LAYOUT,
  KVM_VCPU_EVENTS_LAYOUT,
  KVM_DEBUGREGS_LAYOUT,
  KVM_MSR_LIST_LAYOUT,
  KVM_PIC_STATE_LAYOUT,
  KVM_IOAPIC_STATE_LAYOUT,
  KVM_IRQCHIP_LAYOUT,
  KVM_PIT_CHANNEL_STATE_LAYOUT,
  KVM_PIT_STATE2_LAYOUT,
  KVM_CLOCK_DATA_LAYOUT,
  KVM_IOEVENTFD_LAYOUT,
  KVM_IRQFD_LAYOUT,
  KVM_DIRTY_LOG_LAYOUT,
];

/** Exit reasons we handle (KVM_EXIT_* in <linux/kvm.h>). */
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

export const KVM_INTERNAL_ERROR_EMULATION = 1;

/** kvm_run.system_event.type values. */
export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;

export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;
export const KVM_MP_STATE_SIPI_RECEIVED = 4;

export const KVM_PIT_SPEAKER_DUMMY = 1;

/** KVM_CHECK_EXTENSION capability numbers we probe. */
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_EXT_CPUID = 7;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_IMMEDIATE_EXIT = 136;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_ADJUST_CLOCK = 39;
export const KVM_CAP_VCPU_EVENTS = 41;
export const KVM_CAP_DEBUGREGS = 50;
export const KVM_CAP_XSAVE = 55;
export const KVM_CAP_XCRS = 56;
export const KVM_CAP_TSC_CONTROL = 60;
export const KVM_CAP_GET_TSC_KHZ = 61;
export const KVM_CAP_KVMCLOCK_CTRL = 76;
export const KVM_CAP_IRQFD_RESAMPLE = 82;
/** On a VM fd: the kvm_xsave size KVM_GET_XSAVE2 fills (at least 4096). */
export const KVM_CAP_XSAVE2 = 208;

/** kvm_userspace_memory_region.flags: track writes for KVM_GET_DIRTY_LOG. */
export const KVM_MEM_LOG_DIRTY_PAGES = 1;

/** kvm_ioeventfd.flags. */
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
export const KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;

/** kvm_irqfd.flags. */
export const KVM_IRQFD_FLAG_DEASSIGN = 1 << 0;
export const KVM_IRQFD_FLAG_RESAMPLE = 1 << 1;

/** kvm_irqchip.chip_id values (KVM_IRQCHIP_* in <asm/kvm.h>). */
export const KVM_IRQCHIP_PIC_MASTER = 0;
export const KVM_IRQCHIP_PIC_SLAVE = 1;
export const KVM_IRQCHIP_IOAPIC = 2;

/** Names of the exit reasons, for reports. */
export const KVM_EXIT_NAMES: Readonly<Record<number, string>> = {
  [KVM_EXIT_UNKNOWN]: "KVM_EXIT_UNKNOWN",
  [KVM_EXIT_EXCEPTION]: "KVM_EXIT_EXCEPTION",
  [KVM_EXIT_IO]: "KVM_EXIT_IO",
  [KVM_EXIT_HYPERCALL]: "KVM_EXIT_HYPERCALL",
  [KVM_EXIT_DEBUG]: "KVM_EXIT_DEBUG",
  [KVM_EXIT_HLT]: "KVM_EXIT_HLT",
  [KVM_EXIT_MMIO]: "KVM_EXIT_MMIO",
  [KVM_EXIT_IRQ_WINDOW_OPEN]: "KVM_EXIT_IRQ_WINDOW_OPEN",
  [KVM_EXIT_SHUTDOWN]: "KVM_EXIT_SHUTDOWN",
  [KVM_EXIT_FAIL_ENTRY]: "KVM_EXIT_FAIL_ENTRY",
  [KVM_EXIT_INTR]: "KVM_EXIT_INTR",
  [KVM_EXIT_INTERNAL_ERROR]: "KVM_EXIT_INTERNAL_ERROR",
  [KVM_EXIT_SYSTEM_EVENT]: "KVM_EXIT_SYSTEM_EVENT",
};

/** Constants whose values the header check compares with <linux/kvm.h>. */
export const CHECKED_CONSTANTS: Readonly<Record<string, number>> = {
  KVM_EXIT_IO,
  KVM_EXIT_HLT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_INTR,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_SYSTEM_EVENT,
  KVM_EXIT_IO_IN,
  KVM_EXIT_IO_OUT,
  KVM_INTERNAL_ERROR_EMULATION,
  KVM_SYSTEM_EVENT_SHUTDOWN,
  KVM_SYSTEM_EVENT_RESET,
  KVM_SYSTEM_EVENT_CRASH,
  KVM_MP_STATE_RUNNABLE,
  KVM_MP_STATE_UNINITIALIZED,
  KVM_MP_STATE_HALTED,
  KVM_PIT_SPEAKER_DUMMY,
  KVM_CAP_IRQCHIP,
  KVM_CAP_USER_MEMORY,
  KVM_CAP_SET_TSS_ADDR,
  KVM_CAP_EXT_CPUID,
  KVM_CAP_NR_VCPUS,
  KVM_CAP_PIT2,
  KVM_CAP_MAX_VCPUS,
  KVM_CAP_IMMEDIATE_EXIT,
  KVM_CAP_IRQFD,
  KVM_CAP_IOEVENTFD,
  KVM_CAP_ADJUST_CLOCK,
  KVM_CAP_VCPU_EVENTS,
  KVM_CAP_DEBUGREGS,
  KVM_CAP_XSAVE,
  KVM_CAP_XCRS,
  KVM_CAP_TSC_CONTROL,
  KVM_CAP_GET_TSC_KHZ,
  KVM_CAP_KVMCLOCK_CTRL,
  KVM_CAP_IRQFD_RESAMPLE,
  KVM_CAP_XSAVE2,
  KVM_MEM_LOG_DIRTY_PAGES,
  KVM_IOEVENTFD_FLAG_DATAMATCH,
  KVM_IOEVENTFD_FLAG_PIO,
  KVM_IOEVENTFD_FLAG_DEASSIGN,
  KVM_IRQFD_FLAG_DEASSIGN,
  KVM_IRQFD_FLAG_RESAMPLE,
  KVM_IRQCHIP_PIC_MASTER,
  KVM_IRQCHIP_PIC_SLAVE,
  KVM_IRQCHIP_IOAPIC,
};
