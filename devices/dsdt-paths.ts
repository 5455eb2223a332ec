/**
 * Where the DSDT's cross-referenced objects live, named once so the device that defines an object and the
 * methods that reach it (GED -> CSCN, GED -> PWRB, CPUS -> PRES registers) agree by construction.
 * @module
 */

import { SYSTEM_BUS } from "../src/arch/x86_64/acpi/dsdt.ts";

/** The first serial port, found by its _HID rather than by probing. */
export const COM1_NAME = "COM1";
/** The power button the GED notifies. */
export const POWER_BUTTON_NAME = "PWRB";
/** The CPU hotplug controller: registers and their lock. */
export const CPU_HOTPLUG_NAME = "PRES";
/** The processor container: hotplug methods and one device per possible CPU. */
export const CPU_CONTAINER_NAME = "CPUS";
/** The Generic Event Device. */
export const GED_NAME = "GED_";
/** Where the GED's _EVT sends the power-button Notify. */
export const POWER_BUTTON_PATH = `${SYSTEM_BUS}.${POWER_BUTTON_NAME}`;
/** Where the CPUS methods find the hotplug registers. */
export const CPU_HOTPLUG_PATH = `${SYSTEM_BUS}.${CPU_HOTPLUG_NAME}`;
/** The processor container's full path. */
export const CPU_CONTAINER_PATH = `${SYSTEM_BUS}.${CPU_CONTAINER_NAME}`;
/** What the GED's _EVT calls when the VMM raises GedEvent.CpuHotplug. */
export const CPU_SCAN_METHOD_PATH = `${CPU_CONTAINER_PATH}.CSCN`;
