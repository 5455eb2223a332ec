/**
 * Where the DSDT's cross-referenced objects live, named once so the device that defines an object and the
 * methods that reach it (GED -> CSCN, GED -> PWRB, CPUS -> PRES registers) agree by construction.
 * @module
 */

/** The system bus scope every bunvmm device sits in. */
export const SYSTEM_BUS = "\\_SB";
/** Device names inside SYSTEM_BUS. */
export const COM1_NAME = "COM1";
export const POWER_BUTTON_NAME = "PWRB";
export const CPU_HOTPLUG_NAME = "PRES";
export const CPU_CONTAINER_NAME = "CPUS";
export const GED_NAME = "GED_";
/** Full paths of the devices that others reach. */
export const POWER_BUTTON_PATH = `${SYSTEM_BUS}.${POWER_BUTTON_NAME}`;
export const CPU_HOTPLUG_PATH = `${SYSTEM_BUS}.${CPU_HOTPLUG_NAME}`;
export const CPU_CONTAINER_PATH = `${SYSTEM_BUS}.${CPU_CONTAINER_NAME}`;
/** What the GED's _EVT calls when the VMM raises GedEvent.CpuHotplug. */
export const CPU_SCAN_METHOD_PATH = `${CPU_CONTAINER_PATH}.CSCN`;
