/**
 * FADT, signature "FACP" (ACPI 6.5, section 5.2.9): a hardware-reduced machine (section 4.1) with no PM1/GPE
 * blocks and no FACS. It points at the DSDT, and at the reset and sleep registers the caller names (the
 * ACPI power device's I/O ports), and tells
 * the OS which legacy devices exist (IA-PC boot architecture flags).
 * @module
 */
import { ioPort8, writeGas } from "./generic-address.ts";
import { BUNVMM_IDENTITY, buildSdt, LITTLE_ENDIAN, SDT_TEXT_LENGTH, writeAscii } from "./sdt-header.ts";

/** The FADT's signature, also its key in AcpiTables. */
export const FADT_SIGNATURE = "FACP";
/** FADT revision 6 (ACPI 6.x): the layout with the sleep registers and the hypervisor vendor id. */
export const FADT_REVISION = 6;
/** Minor version 5, ACPI 6.5: Linux honours MADT Online Capable only from FADT 6.3 on (arch/x86/kernel/acpi/boot.c). */
export const FADT_MINOR_VERSION = 5;

/** Byte offsets of the fields bunvmm sets (Table 5.9); every other field is 0. */
export const FADT = {
  FIRMWARE_CTRL: 36,
  DSDT: 40,
  PREFERRED_PM_PROFILE: 45,
  SCI_INT: 46,
  IAPC_BOOT_ARCH: 109,
  FLAGS: 112,
  RESET_REG: 116,
  RESET_VALUE: 128,
  MINOR_VERSION: 131,
  X_FIRMWARE_CTRL: 132,
  X_DSDT: 140,
  SLEEP_CONTROL_REG: 244,
  SLEEP_STATUS_REG: 256,
  HYPERVISOR_VENDOR_ID: 268,
  SIZE: 276,
} as const;

/** IA-PC boot architecture flags (Table 5.11), named as in the spec. */
export const IapcBootArch = {
  LEGACY_DEVICES: 1 << 0,
  I8042: 1 << 1,
  VGA_NOT_PRESENT: 1 << 2,
  CMOS_RTC_NOT_PRESENT: 1 << 5,
} as const;
/**
 * bunvmm has ISA-style devices (COM1 at 0x3f8, an i8042 at 0x60/0x64), no VGA and no CMOS RTC. Without
 * the 8042 flag Linux treats the i8042 as absent; without "no RTC" it would probe ports 0x70/0x71.
 */
export const BUNVMM_IAPC_BOOT_ARCH =
  IapcBootArch.LEGACY_DEVICES |
  IapcBootArch.I8042 |
  IapcBootArch.VGA_NOT_PRESENT |
  IapcBootArch.CMOS_RTC_NOT_PRESENT;

/** Fixed feature flags (Table 5.10), named as in the spec. */
export const FadtFlag = {
  PWR_BUTTON: 1 << 4,
  SLP_BUTTON: 1 << 5,
  RESET_REG_SUP: 1 << 10,
  HW_REDUCED_ACPI: 1 << 20,
} as const;
/**
 * Hardware-reduced, with a reset register. PWR_BUTTON and SLP_BUTTON set mean "no fixed-feature buttons":
 * the power button is the control-method device \_SB.PWRB that the GED notifies, and there is no sleep button.
 */
export const BUNVMM_FADT_FLAGS =
  FadtFlag.HW_REDUCED_ACPI | FadtFlag.RESET_REG_SUP | FadtFlag.PWR_BUTTON | FadtFlag.SLP_BUTTON;

/** Preferred_PM_Profile 0: unspecified (a VM is no particular kind of machine). */
const PM_PROFILE_UNSPECIFIED = 0;
/** A hardware-reduced machine has no SCI. */
const NO_SCI = 0;
/** The FADT's hypervisor vendor identity is the OEM table id ("BUNVMM  "). */
export const HYPERVISOR_VENDOR_ID = BUNVMM_IDENTITY.OEM_TABLE_ID;

/** The hardware-reduced power registers: one-byte I/O ports, and the value the OS writes to reset. */
export interface FadtPowerRegisters {
  readonly sleepControlPort: number;
  readonly sleepStatusPort: number;
  readonly resetPort: number;
  readonly resetValue: number;
}

/** Where the FADT points. */
export interface FadtAddresses {
  /** Guest-physical address of the DSDT (written as X_DSDT; the 32-bit DSDT field stays 0). */
  readonly dsdt: number;
  readonly power: FadtPowerRegisters;
}

/** Builds the FADT. */
export function buildFadt(addresses: FadtAddresses): Uint8Array {
  return buildSdt(FADT_SIGNATURE, FADT_REVISION, FADT.SIZE, (view, bytes) => {
    view.setUint8(FADT.PREFERRED_PM_PROFILE, PM_PROFILE_UNSPECIFIED);
    view.setUint16(FADT.SCI_INT, NO_SCI, LITTLE_ENDIAN);
    view.setUint16(FADT.IAPC_BOOT_ARCH, BUNVMM_IAPC_BOOT_ARCH, LITTLE_ENDIAN);
    view.setUint32(FADT.FLAGS, BUNVMM_FADT_FLAGS, LITTLE_ENDIAN);
    writeGas(view, FADT.RESET_REG, ioPort8(addresses.power.resetPort));
    view.setUint8(FADT.RESET_VALUE, addresses.power.resetValue);
    view.setUint8(FADT.MINOR_VERSION, FADT_MINOR_VERSION);
    view.setBigUint64(FADT.X_DSDT, BigInt(addresses.dsdt), LITTLE_ENDIAN);
    writeGas(view, FADT.SLEEP_CONTROL_REG, ioPort8(addresses.power.sleepControlPort));
    writeGas(view, FADT.SLEEP_STATUS_REG, ioPort8(addresses.power.sleepStatusPort));
    writeAscii(bytes, FADT.HYPERVISOR_VENDOR_ID, HYPERVISOR_VENDOR_ID, SDT_TEXT_LENGTH.OEM_TABLE_ID);
  });
}
