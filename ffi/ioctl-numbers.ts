/**
 * KVM ioctl request numbers, computed with the kernel's _IO/_IOR/_IOW/_IOWR encoding from the struct
 * sizes in kvm-structs.ts. test/ffi/kvm-structs.test.ts compares each with <linux/kvm.h>.
 */
import {
  KVM_CLOCK_DATA_LAYOUT,
  KVM_CPUID2_LAYOUT,
  KVM_DEBUGREGS_LAYOUT,
  KVM_DIRTY_LOG_LAYOUT,
  KVM_FPU_LAYOUT,
  KVM_IOEVENTFD_LAYOUT,
  KVM_IRQ_LEVEL_LAYOUT,
  KVM_IRQCHIP_LAYOUT,
  KVM_IRQFD_LAYOUT,
  KVM_LAPIC_STATE_LAYOUT,
  KVM_MP_STATE_LAYOUT,
  KVM_MSR_LIST_LAYOUT,
  KVM_MSRS_LAYOUT,
  KVM_PIT_CONFIG_LAYOUT,
  KVM_PIT_STATE2_LAYOUT,
  KVM_REGS_LAYOUT,
  KVM_SIGNAL_MASK_LAYOUT,
  KVM_SREGS_LAYOUT,
  KVM_TRANSLATION_LAYOUT,
  KVM_USERSPACE_MEMORY_REGION_LAYOUT,
  KVM_VCPU_EVENTS_LAYOUT,
  KVM_XCRS_LAYOUT,
  KVM_XSAVE_LAYOUT,
} from "./kvm-structs.ts";

/** The ioctl "type" byte KVM uses (KVMIO). */
const KVMIO = 0xae;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
const U64 = 8;

function ioc(dir: number, nr: number, size: number): number {
  // (dir << 30) | (size << 16) | (type << 8) | nr, kept non-negative above 2^31.
  return dir * 2 ** 30 + size * 2 ** 16 + KVMIO * 2 ** 8 + nr;
}
const io = (nr: number) => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, size: number) => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number) => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, nr, size);

// ioctls for /dev/kvm
export const KVM_GET_API_VERSION = io(0x00);
export const KVM_CREATE_VM = io(0x01);
export const KVM_GET_MSR_INDEX_LIST = iowr(0x02, KVM_MSR_LIST_LAYOUT.size);
export const KVM_CHECK_EXTENSION = io(0x03);
export const KVM_GET_VCPU_MMAP_SIZE = io(0x04);
export const KVM_GET_SUPPORTED_CPUID = iowr(0x05, KVM_CPUID2_LAYOUT.size);

// ioctls for VM fds
export const KVM_CREATE_VCPU = io(0x41);
export const KVM_GET_DIRTY_LOG = iow(0x42, KVM_DIRTY_LOG_LAYOUT.size);
export const KVM_SET_USER_MEMORY_REGION = iow(0x46, KVM_USERSPACE_MEMORY_REGION_LAYOUT.size);
export const KVM_SET_TSS_ADDR = io(0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = iow(0x48, U64);
export const KVM_CREATE_IRQCHIP = io(0x60);
export const KVM_IRQ_LINE = iow(0x61, KVM_IRQ_LEVEL_LAYOUT.size);
export const KVM_GET_IRQCHIP = iowr(0x62, KVM_IRQCHIP_LAYOUT.size);
/** _IOR although it writes: the kernel header declares it so, and the number is what matters. */
export const KVM_SET_IRQCHIP = ior(0x63, KVM_IRQCHIP_LAYOUT.size);
export const KVM_IRQFD = iow(0x76, KVM_IRQFD_LAYOUT.size);
export const KVM_CREATE_PIT2 = iow(0x77, KVM_PIT_CONFIG_LAYOUT.size);
export const KVM_IOEVENTFD = iow(0x79, KVM_IOEVENTFD_LAYOUT.size);
export const KVM_SET_CLOCK = iow(0x7b, KVM_CLOCK_DATA_LAYOUT.size);
export const KVM_GET_CLOCK = ior(0x7c, KVM_CLOCK_DATA_LAYOUT.size);
export const KVM_GET_PIT2 = ior(0x9f, KVM_PIT_STATE2_LAYOUT.size);
export const KVM_SET_PIT2 = iow(0xa0, KVM_PIT_STATE2_LAYOUT.size);

// ioctls for vCPU fds
export const KVM_RUN = io(0x80);
export const KVM_GET_REGS = ior(0x81, KVM_REGS_LAYOUT.size);
export const KVM_SET_REGS = iow(0x82, KVM_REGS_LAYOUT.size);
export const KVM_GET_SREGS = ior(0x83, KVM_SREGS_LAYOUT.size);
export const KVM_SET_SREGS = iow(0x84, KVM_SREGS_LAYOUT.size);
export const KVM_TRANSLATE = iowr(0x85, KVM_TRANSLATION_LAYOUT.size);
export const KVM_GET_MSRS = iowr(0x88, KVM_MSRS_LAYOUT.size);
export const KVM_SET_MSRS = iow(0x89, KVM_MSRS_LAYOUT.size);
export const KVM_SET_SIGNAL_MASK = iow(0x8b, KVM_SIGNAL_MASK_LAYOUT.size);
export const KVM_GET_FPU = ior(0x8c, KVM_FPU_LAYOUT.size);
export const KVM_SET_FPU = iow(0x8d, KVM_FPU_LAYOUT.size);
export const KVM_GET_LAPIC = ior(0x8e, KVM_LAPIC_STATE_LAYOUT.size);
export const KVM_SET_LAPIC = iow(0x8f, KVM_LAPIC_STATE_LAYOUT.size);
export const KVM_SET_CPUID2 = iow(0x90, KVM_CPUID2_LAYOUT.size);
export const KVM_GET_MP_STATE = ior(0x98, KVM_MP_STATE_LAYOUT.size);
export const KVM_SET_MP_STATE = iow(0x99, KVM_MP_STATE_LAYOUT.size);
export const KVM_GET_VCPU_EVENTS = ior(0x9f, KVM_VCPU_EVENTS_LAYOUT.size);
export const KVM_SET_VCPU_EVENTS = iow(0xa0, KVM_VCPU_EVENTS_LAYOUT.size);
export const KVM_GET_DEBUGREGS = ior(0xa1, KVM_DEBUGREGS_LAYOUT.size);
export const KVM_SET_DEBUGREGS = iow(0xa2, KVM_DEBUGREGS_LAYOUT.size);
export const KVM_SET_TSC_KHZ = io(0xa2);
export const KVM_GET_TSC_KHZ = io(0xa3);
export const KVM_GET_XSAVE = ior(0xa4, KVM_XSAVE_LAYOUT.size);
export const KVM_SET_XSAVE = iow(0xa5, KVM_XSAVE_LAYOUT.size);
export const KVM_GET_XCRS = ior(0xa6, KVM_XCRS_LAYOUT.size);
export const KVM_SET_XCRS = iow(0xa7, KVM_XCRS_LAYOUT.size);
export const KVM_KVMCLOCK_CTRL = io(0xad);
export const KVM_GET_XSAVE2 = ior(0xcf, KVM_XSAVE_LAYOUT.size);

/** Every ioctl number above by its <linux/kvm.h> name, for the header check. */
export const IOCTL_NUMBERS: Readonly<Record<string, number>> = {
  KVM_GET_API_VERSION,
  KVM_CREATE_VM,
  KVM_GET_MSR_INDEX_LIST,
  KVM_CHECK_EXTENSION,
  KVM_GET_VCPU_MMAP_SIZE,
  KVM_GET_SUPPORTED_CPUID,
  KVM_CREATE_VCPU,
  KVM_GET_DIRTY_LOG,
  KVM_SET_USER_MEMORY_REGION,
  KVM_SET_TSS_ADDR,
  KVM_SET_IDENTITY_MAP_ADDR,
  KVM_CREATE_IRQCHIP,
  KVM_IRQ_LINE,
  KVM_GET_IRQCHIP,
  KVM_SET_IRQCHIP,
  KVM_IRQFD,
  KVM_CREATE_PIT2,
  KVM_IOEVENTFD,
  KVM_SET_CLOCK,
  KVM_GET_CLOCK,
  KVM_GET_PIT2,
  KVM_SET_PIT2,
  KVM_RUN,
  KVM_GET_REGS,
  KVM_SET_REGS,
  KVM_GET_SREGS,
  KVM_SET_SREGS,
  KVM_TRANSLATE,
  KVM_GET_MSRS,
  KVM_SET_MSRS,
  KVM_SET_SIGNAL_MASK,
  KVM_GET_FPU,
  KVM_SET_FPU,
  KVM_GET_LAPIC,
  KVM_SET_LAPIC,
  KVM_SET_CPUID2,
  KVM_GET_MP_STATE,
  KVM_SET_MP_STATE,
  KVM_GET_VCPU_EVENTS,
  KVM_SET_VCPU_EVENTS,
  KVM_GET_DEBUGREGS,
  KVM_SET_DEBUGREGS,
  KVM_SET_TSC_KHZ,
  KVM_GET_TSC_KHZ,
  KVM_GET_XSAVE,
  KVM_SET_XSAVE,
  KVM_GET_XCRS,
  KVM_SET_XCRS,
  KVM_KVMCLOCK_CTRL,
  KVM_GET_XSAVE2,
};
