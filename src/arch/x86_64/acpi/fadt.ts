/**
 * FADT, signature "FACP" (ACPI 6.5 §5.2.9): a hardware-reduced machine (§4.1) with no PM1/GPE blocks and no
 * FACS. It points at the DSDT, and at the reset and sleep registers of devices/acpi-power.ts, and tells
 * the OS which legacy devices exist (IA-PC boot architecture flags).
 * @module
 */
import {
  ACPI_POWER_PORT,
  ACPI_RESET,
  ACPI_RESET_VALUE,
  ACPI_SLEEP_CONTROL,
  ACPI_SLEEP_STATUS,
} from "../../../../devices/acpi-power.ts";
import { ioPort8, writeGas } from "./generic-address.ts";
import { LITTLE_ENDIAN, OEM_TABLE_ID, OEM_TABLE_ID_LENGTH, buildSdt, writeAscii } from "./sdt-header.ts";

export const FADT_SIGNATURE = "FACP";
/** FADT revision 6 with minor version 5 is ACPI 6.5; Linux honours MADT Online Capable only from 6.3. */
export const FADT_REVISION = 6;
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

/** IA-PC boot architecture flags (Table 5.11). */
export const IAPC_BOOT_ARCH_LEGACY_DEVICES = 1 << 0;
export const IAPC_BOOT_ARCH_8042 = 1 << 1;
export const IAPC_BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2;
export const IAPC_BOOT_ARCH_CMOS_RTC_NOT_PRESENT = 1 << 5;
/**
 * bunvmm has ISA-style devices (COM1 at 0x3f8, an i8042 at 0x60/0x64), no VGA and no CMOS RTC. Without
 * the 8042 flag Linux treats the i8042 as absent; without "no RTC" it would probe ports 0x70/0x71.
 */
export const BUNVMM_IAPC_BOOT_ARCH =
  IAPC_BOOT_ARCH_LEGACY_DEVICES | IAPC_BOOT_ARCH_8042 | IAPC_BOOT_ARCH_VGA_NOT_PRESENT | IAPC_BOOT_ARCH_CMOS_RTC_NOT_PRESENT;

/** Fixed feature flags (Table 5.10). */
export const FADT_PWR_BUTTON = 1 << 4;
export const FADT_SLP_BUTTON = 1 << 5;
export const FADT_RESET_REG_SUP = 1 << 10;
export const FADT_HW_REDUCED_ACPI = 1 << 20;
/**
 * Hardware-reduced, with a reset register. PWR_BUTTON and SLP_BUTTON set mean "no fixed-feature buttons":
 * the power button is the control-method device \_SB.PWRB that the GED notifies, and there is no sleep button.
 */
export const BUNVMM_FADT_FLAGS = FADT_HW_REDUCED_ACPI | FADT_RESET_REG_SUP | FADT_PWR_BUTTON | FADT_SLP_BUTTON;

/** Preferred_PM_Profile 0: unspecified (a VM is no particular kind of machine). */
const PM_PROFILE_UNSPECIFIED = 0;
/** A hardware-reduced machine has no SCI. */
const NO_SCI = 0;
/** The FADT's hypervisor vendor identity is the OEM table id ("BUNVMM  "). */
export const HYPERVISOR_VENDOR_ID = OEM_TABLE_ID;

/** Where the FADT points. */
export interface FadtAddresses {
  /** Guest-physical address of the DSDT (written as X_DSDT; the 32-bit DSDT field stays 0). */
  readonly dsdt: number;
}

/** Builds the FADT. */
export function buildFadt(addresses: FadtAddresses): Uint8Array {
  return buildSdt(FADT_SIGNATURE, FADT_REVISION, FADT.SIZE, (view, bytes) => {
    view.setUint8(FADT.PREFERRED_PM_PROFILE, PM_PROFILE_UNSPECIFIED);
    view.setUint16(FADT.SCI_INT, NO_SCI, LITTLE_ENDIAN);
    view.setUint16(FADT.IAPC_BOOT_ARCH, BUNVMM_IAPC_BOOT_ARCH, LITTLE_ENDIAN);
    view.setUint32(FADT.FLAGS, BUNVMM_FADT_FLAGS, LITTLE_ENDIAN);
    writeGas(view, FADT.RESET_REG, ioPort8(ACPI_POWER_PORT + ACPI_RESET));
    view.setUint8(FADT.RESET_VALUE, ACPI_RESET_VALUE);
    view.setUint8(FADT.MINOR_VERSION, FADT_MINOR_VERSION);
    view.setBigUint64(FADT.X_DSDT, BigInt(addresses.dsdt), LITTLE_ENDIAN);
    writeGas(view, FADT.SLEEP_CONTROL_REG, ioPort8(ACPI_POWER_PORT + ACPI_SLEEP_CONTROL));
    writeGas(view, FADT.SLEEP_STATUS_REG, ioPort8(ACPI_POWER_PORT + ACPI_SLEEP_STATUS));
    writeAscii(bytes, FADT.HYPERVISOR_VENDOR_ID, HYPERVISOR_VENDOR_ID, OEM_TABLE_ID_LENGTH);
  });
}
