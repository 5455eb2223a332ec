/**
 * Byte layouts of the <linux/kvm.h> structs bunvmm passes to ioctls, declared once as named offsets.
 *
 * Keys are the C member paths (`"io.port"` is `kvm_run.io.port`), so test/ffi/kvm-structs.test.ts can
 * generate a C program that prints `offsetof`/`sizeof` for every entry and compare it with this file.
 * A size of 0 marks a flexible array member (only its offset is checked).
 */
export interface Field {
  readonly offset: number;
  readonly size: number;
}

export interface StructLayout<K extends string = string> {
  /** The C struct name, without `struct`. */
  readonly cName: string;
  readonly size: number;
  readonly fields: { readonly [P in K]: Field };
}

function struct<const K extends string>(
  cName: string,
  size: number,
  fields: { readonly [P in K]: readonly [offset: number, size: number] },
): StructLayout<K> {
  const out = {} as { [P in K]: Field };
  for (const key of Object.keys(fields) as K[]) {
    const [offset, fieldSize] = fields[key];
    out[key] = { offset, size: fieldSize };
  }
  return { cName, size, fields: out };
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

/** Every layout above, for the header check. */
export const ALL_LAYOUTS: readonly StructLayout[] = [
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
};
