/**
 * The guest-physical and port layout of a bunvmm x86_64 machine: every fixed address lives here, so the
 * builder, the devices, the ACPI tables and the tests agree by construction.
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

/** ACPI CPU hotplug controller: 12-byte MMIO register block (devices/cpu-hotplug-controller.ts). */
export const CPU_HOTPLUG_BASE = 0xfe00_0000;
/** ACPI Generic Event Device: notification register (devices/acpi-ged.ts). */
export const GED_BASE = 0xfe00_1000;
/** The GSI the GED raises (an ISA line no other device uses: edge-triggered, active high). */
export const GED_GSI = 5;

/** ACPI tables live in guest RAM in the BIOS area, reserved in e820; the RSDP where legacy scans look. */
export const ACPI_TABLES_START = 0x000e_0000;
export const ACPI_TABLES_END = 0x0010_0000;
export const RSDP_ADDRESS = ACPI_TABLES_START;
