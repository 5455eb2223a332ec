/*
 * ACPI table walk for the C test guests (ACPI 6.5): the RSDP is found on a 16-byte boundary of the BIOS
 * area 0xE0000-0xFFFFF, its XSDT lists the FADT, whose X_DSDT points at the DSDT. The DSDT's AML is not
 * interpreted: after each "LNRO0005" string the next Memory32Fixed descriptor (tag 0x86, length 9) gives
 * the transport's base, which is how its _CRS encodes it. The transport's DeviceID register then says
 * which device it is.
 */
#include "acpi.h"

#define BIOS_AREA_START 0xe0000
#define BIOS_AREA_END 0x100000
#define RSDP_ALIGN 16
#define RSDP_XSDT_ADDRESS 24
#define SDT_LENGTH 4
#define SDT_HEADER_BYTES 36
#define FADT_DSDT 40
#define FADT_X_DSDT 140
#define MEMORY32_FIXED_TAG 0x86
#define MEMORY32_FIXED_LENGTH 9
#define MEMORY32_FIXED_BASE 4
#define VIRTIO_MMIO_DEVICE_ID 0x008

static const char RSDP_SIGNATURE[] = "RSD PTR ";
static const char VIRTIO_HID[] = "LNRO0005";

static u32 rd32(u32 a) { return *(volatile u32 *)a; }
static u8 rd8(u32 a) { return *(volatile u8 *)a; }

static int same(u32 at, const char *s, u32 n) {
  for (u32 i = 0; i < n; i++)
    if (rd8(at + i) != (u8)s[i]) return 0;
  return 1;
}

static u32 find_rsdp(void) {
  for (u32 a = BIOS_AREA_START; a < BIOS_AREA_END; a += RSDP_ALIGN)
    if (same(a, RSDP_SIGNATURE, 8)) return a;
  return 0;
}

/* The DSDT's address, or 0. Only 32-bit table addresses are followed (bunvmm puts them below 1 MiB). */
static u32 find_dsdt(void) {
  u32 rsdp = find_rsdp();
  if (!rsdp) return 0;
  u32 xsdt = rd32(rsdp + RSDP_XSDT_ADDRESS);
  u32 entries = (rd32(xsdt + SDT_LENGTH) - SDT_HEADER_BYTES) / 8;
  for (u32 i = 0; i < entries; i++) {
    u32 table = rd32(xsdt + SDT_HEADER_BYTES + 8 * i);
    if (!same(table, "FACP", 4)) continue;
    u32 x_dsdt = rd32(table + FADT_X_DSDT);
    return x_dsdt ? x_dsdt : rd32(table + FADT_DSDT);
  }
  return 0;
}

u32 acpi_find_virtio(u32 device_id) {
  u32 dsdt = find_dsdt();
  if (!dsdt || !same(dsdt, "DSDT", 4)) return 0;
  u32 end = dsdt + rd32(dsdt + SDT_LENGTH);
  for (u32 a = dsdt + SDT_HEADER_BYTES; a + 8 <= end; a++) {
    if (!same(a, VIRTIO_HID, 8)) continue;
    for (u32 b = a + 8; b + MEMORY32_FIXED_BASE + 4 <= end; b++) {
      if (rd8(b) != MEMORY32_FIXED_TAG || rd8(b + 1) != MEMORY32_FIXED_LENGTH || rd8(b + 2) != 0) continue;
      u32 base = rd32(b + MEMORY32_FIXED_BASE);
      if (rd32(base + VIRTIO_MMIO_DEVICE_ID) == device_id) return base;
      break;
    }
  }
  return 0;
}
