/**
 * The Notify values bunvmm's AML sends (ACPI 6.5 §5.6.6, Table 5.166, and §4.8.3.1 for the button).
 * @module
 */

/** Device Check: "re-enumerate this device" (a CPU was plugged in). */
export const NOTIFY_DEVICE_CHECK = 0x01;
/** Eject Request: "prepare this device for removal, then call its _EJ0". */
export const NOTIFY_EJECT_REQUEST = 0x03;
/** Sent to a power button device (PNP0C0C): the button was pressed. */
export const NOTIFY_BUTTON_PRESSED = 0x80;
