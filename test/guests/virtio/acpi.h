/*
 * Finds virtio-mmio transports the way an ACPI operating system does: the RSDP in the legacy scan
 * area, the XSDT, the FADT, the DSDT, then each LNRO0005 device's Memory32Fixed window.
 */
#ifndef BUNVMM_GUEST_ACPI_H
#define BUNVMM_GUEST_ACPI_H

#include "runtime.h"

/* The base of the first virtio-mmio transport whose DeviceID register reads `device_id`; 0: none. */
u32 acpi_find_virtio(u32 device_id);

#endif
