/**
 * The guest-physical and port layout of a bunvmm x86_64 machine: every fixed address lives here, so the
 * builder, the devices, the ACPI tables and the tests agree by construction. Devices that can sit
 * anywhere get their address from the resource allocator, within the pools declared here.
 */

/** Guest RAM ends below this and resumes at 4 GiB: the 32-bit hole holds MMIO, LAPIC, IOAPIC. */
export const MMIO_HOLE_START = 0xc000_0000;
export const HIGH_RAM_START = 0x1_0000_0000;

/** KVM_SET_TSS_ADDR needs three pages and KVM_SET_IDENTITY_MAP_ADDR one, in the hole, below the BIOS area. */
export const IDENTITY_MAP_ADDRESS = 0xfeff_c000;
export const TSS_ADDRESS = 0xfeff_d000;

export const IOAPIC_BASE = 0xfec0_0000;
export const LAPIC_BASE = 0xfee0_0000;

/** Unowned MMIO in the hole: test guests and the exit-cost benchmark store here. */
export const UNOWNED_MMIO_TEST_ADDRESS = 0xd000_0000;

/** COM1: ports and the ISA interrupt it raises. */
export const COM1_PORT = 0x3f8;
export const COM1_GSI = 4;
/** The i8042's data and status/command ports, where every PC has them. */
export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
/** The hardware-reduced ACPI power registers (sleep control, reset, sleep status), which the FADT names. */
export const ACPI_POWER_PORT = 0x600;

/**
 * Where the resource allocator (devices/resource-allocator.ts) finds room for devices that take any
 * address: MMIO windows (a virtio-mmio transport's 0x200 bytes) between the unowned test address and
 * the fixed platform registers, and GSIs on the IOAPIC pins above the 16 ISA interrupts (KVM's
 * in-kernel IOAPIC has 24 pins).
 */
export const DEVICE_MMIO_START = 0xd100_0000;
export const DEVICE_MMIO_END = 0xfe00_0000;
export const DEVICE_GSI_FIRST = 16;
export const DEVICE_GSI_LAST = 23;

/**
 * virtio-mmio transports: each takes a VIRTIO_MMIO_SIZE window and a GSI from the allocator, disks in
 * config order, then the rng, then the console. No platform device takes from the pools, so the first
 * transport lands at VIRTIO_MMIO_BASE with VIRTIO_GSI_BASE (a test guest can be built against them; the
 * DSDT says the same). At most DEVICE_GSI_LAST - VIRTIO_GSI_BASE + 1 transports fit.
 */
export { VIRTIO_MMIO_SIZE } from "../../../ffi/virtio-layouts.ts";
export const VIRTIO_MMIO_BASE = DEVICE_MMIO_START;
export const VIRTIO_GSI_BASE = DEVICE_GSI_FIRST;

/** The raw payload format (docs/raw-payload.md). */
export const RAW_LOAD_ADDRESS = 0x1_0000;
export const RAW_STACK_TOP = 0x1_0000;
/** End of conventional memory usable by a raw image (the EBDA starts at 0x9fc00 on PCs). */
export const RAW_MAX_END = 0x9_f000;

/** Splits `size` bytes of RAM around the 32-bit hole. */
export function ramRanges(size: number): { gpa: number; size: number }[] {
  if (size <= MMIO_HOLE_START) return [{ gpa: 0, size }];
  return [
    { gpa: 0, size: MMIO_HOLE_START },
    { gpa: HIGH_RAM_START, size: size - MMIO_HOLE_START },
  ];
}

/** ACPI CPU hotplug controller: its 12-byte MMIO register block. */
export const CPU_HOTPLUG_BASE = 0xfe00_0000;
/** ACPI Generic Event Device: its notification register. */
export const GED_BASE = 0xfe00_1000;
/** The GSI the GED raises (an ISA line no other device uses: edge-triggered, active high). */
export const GED_GSI = 5;

/** ACPI tables live in guest RAM in the BIOS area, reserved in e820; the RSDP where legacy scans look. */
export const ACPI_TABLES_START = 0x000e_0000;
export const ACPI_TABLES_END = 0x0010_0000;
export const RSDP_ADDRESS = ACPI_TABLES_START;

/**
 * Linux boots (docs/boot-protocols.md). Fixed structures below 640 KiB, used only when a bzImage or a
 * PVH vmlinux boots (the raw format's 0x7000 stack and 0x8000/0x9000 data never coexist with them).
 */
/** End of conventional memory: the e820 table's first RAM range is [0, LOW_RAM_END). */
export const LOW_RAM_END = 0xa_0000;
/** Kernels, initramfs and everything else the guest owns sit at or above 1 MiB. */
export const HIGH_MEMORY_START = 0x10_0000;
/** The boot GDT (4 descriptors: null, null, __BOOT_CS, __BOOT_DS) of the 64-bit bzImage entry. */
export const BOOT_GDT_ADDRESS = 0x500;
/** PVH: struct hvm_start_info (56 bytes), its one module entry (32 bytes), its memory map (≤ 128 × 24). */
export const PVH_START_INFO_ADDRESS = 0x6000;
export const PVH_MODLIST_ADDRESS = 0x6040;
export const PVH_MEMMAP_ADDRESS = 0x6080;
/** bzImage: struct boot_params, the "zero page" (4 KiB); RSI points here at entry. */
export const ZERO_PAGE_ADDRESS = 0x7000;
/** Identity page tables of the 64-bit entry: PML4, PDPT, then four page directories (2 MiB pages). */
export const BOOT_PML4_ADDRESS = 0x9000;
export const BOOT_PDPT_ADDRESS = 0xa000;
export const BOOT_PD_ADDRESS = 0xb000;
export const BOOT_PAGE_TABLES_END = 0xf000;
/** The kernel command line with its NUL, for both protocols; the region holds up to 64 KiB. */
export const CMDLINE_ADDRESS = 0x2_0000;
export const CMDLINE_REGION_SIZE = 0x1_0000;
/** Where a bzImage loads when its header gives no pref_address (Linux's CONFIG_PHYSICAL_START default). */
export const DEFAULT_KERNEL_LOAD_ADDRESS = 0x100_0000;
