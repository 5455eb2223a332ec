/*
 * Finding the virtio-blk transport through the ACPI tables (or QEMU microvm's fixed range), and the
 * power-off the benchmark and stress guests share. See bench-probe.h for the search order.
 */
#include "bench-probe.h"

/* The legacy RSDP search area and its alignment (ACPI 6.5 section 5.2.5.1). */
#define RSDP_SCAN_START 0xe0000
#define RSDP_SCAN_END 0x100000
#define RSDP_ALIGN 16
#define RSDP_V1_BYTES 20
#define RSDP_REVISION 15
#define RSDP_RSDT 16
#define RSDP_XSDT 24
/* Every system description table starts with a 36-byte header: signature, then its length at 4. */
#define SDT_LENGTH 4
#define SDT_HEADER_BYTES 36
/* FADT: the 32-bit DSDT address, and the 64-bit X_DSDT that a FADT of at least 148 bytes carries. */
#define FADT_DSDT 40
#define FADT_X_DSDT 140
#define FADT_X_DSDT_MIN_LENGTH 148
/* A table larger than this is not believed (a corrupt length would make the scan run through RAM). */
#define SDT_MAX_BYTES (1u << 20)
/* AML: how far after a "LNRO0005" string the device's Memory32Fixed descriptor may appear. */
#define LNRO_CRS_WINDOW 256
#define MEM32_FIXED_TAG 0x86
#define MEM32_FIXED_LENGTH 9
#define MEM32_FIXED_BASE 4
#define MEM32_FIXED_BYTES 12
/* QEMU microvm's virtio-mmio transports. */
#define MICROVM_VIRTIO_BASE 0xfeb00000u
#define MICROVM_VIRTIO_COUNT 24

static const char LNRO[] = "LNRO0005";
#define LNRO_BYTES 8

static u32 read_u32(u32 addr) { return *(volatile u32 *)addr; }

static int same(u32 addr, const char *s, u32 n) {
  const u8 *p = (const u8 *)addr;
  for (u32 i = 0; i < n; i++)
    if (p[i] != (u8)s[i]) return 0;
  return 1;
}

static int checksum_ok(u32 addr, u32 n) {
  u8 sum = 0;
  for (u32 i = 0; i < n; i++) sum = (u8)(sum + ((const u8 *)addr)[i]);
  return sum == 0;
}

static int is_virtio_blk(u32 base) {
  return read_u32(base + REG_MAGIC) == VIRTIO_MAGIC && read_u32(base + REG_VERSION) == 2 &&
         read_u32(base + REG_DEVICE_ID) == VIRTIO_DEVICE_BLOCK;
}

static u32 find_rsdp(void) {
  for (u32 a = RSDP_SCAN_START; a < RSDP_SCAN_END; a += RSDP_ALIGN)
    if (same(a, "RSD PTR ", 8) && checksum_ok(a, RSDP_V1_BYTES)) return a;
  return 0;
}

/* A table's address from a 64-bit pointer, or 0 when it is above 4 GiB (out of this 32-bit guest's reach). */
static u32 low_address(u32 at) { return read_u32(at + 4) == 0 ? read_u32(at) : 0; }

static u32 table_length(u32 table) {
  u32 n = read_u32(table + SDT_LENGTH);
  return n >= SDT_HEADER_BYTES && n <= SDT_MAX_BYTES ? n : 0;
}

/* The first virtio-blk among the LNRO0005 devices of one AML table, or 0. */
static u32 scan_aml(u32 table) {
  u32 n = table_length(table);
  if (!n) return 0;
  const u8 *p = (const u8 *)table;
  for (u32 i = SDT_HEADER_BYTES; i + LNRO_BYTES <= n; i++) {
    if (p[i] != 'L' || !same(table + i, LNRO, LNRO_BYTES)) continue;
    u32 end = i + LNRO_BYTES + LNRO_CRS_WINDOW;
    if (end > n) end = n;
    for (u32 j = i + LNRO_BYTES; j + MEM32_FIXED_BYTES <= end; j++) {
      if (p[j] == 'L' && same(table + j, LNRO, LNRO_BYTES)) break; /* the next device: this one has none */
      if (p[j] != MEM32_FIXED_TAG || p[j + 1] != MEM32_FIXED_LENGTH || p[j + 2] != 0) continue;
      u32 base = read_u32(table + j + MEM32_FIXED_BASE);
      if (is_virtio_blk(base)) return base;
      break;
    }
  }
  return 0;
}

static u32 from_acpi(void) {
  u32 rsdp = find_rsdp();
  if (!rsdp) {
    puts("probe: no RSDP\n");
    return 0;
  }
  u32 revision = ((const u8 *)rsdp)[RSDP_REVISION];
  u32 root = revision >= 2 ? low_address(rsdp + RSDP_XSDT) : 0;
  u32 entry_bytes = 8;
  if (!root) {
    root = read_u32(rsdp + RSDP_RSDT);
    entry_bytes = 4;
  }
  u32 n = root ? table_length(root) : 0;
  if (!n) {
    puts("probe: no XSDT or RSDT\n");
    return 0;
  }
  for (u32 at = root + SDT_HEADER_BYTES; at + entry_bytes <= root + n; at += entry_bytes) {
    u32 table = entry_bytes == 8 ? low_address(at) : read_u32(at);
    if (!table) continue;
    u32 found = 0;
    if (same(table, "FACP", 4)) {
      u32 len = table_length(table);
      u32 dsdt = len >= FADT_X_DSDT_MIN_LENGTH ? low_address(table + FADT_X_DSDT) : 0;
      if (!dsdt && len >= FADT_DSDT + 4) dsdt = read_u32(table + FADT_DSDT);
      if (dsdt && same(dsdt, "DSDT", 4)) found = scan_aml(dsdt);
    } else if (same(table, "SSDT", 4)) {
      found = scan_aml(table);
    }
    if (found) return found;
  }
  puts("probe: no virtio-blk among the LNRO0005 devices in the ACPI tables\n");
  return 0;
}

u32 find_virtio_blk(void) {
  u32 base = from_acpi();
  const char *how = "ACPI LNRO0005";
  for (u32 i = 0; !base && i < MICROVM_VIRTIO_COUNT; i++) {
    if (is_virtio_blk(MICROVM_VIRTIO_BASE + VIRTIO_MMIO_WINDOW * i)) {
      base = MICROVM_VIRTIO_BASE + VIRTIO_MMIO_WINDOW * i;
      how = "the microvm range";
    }
  }
  if (!base) {
    puts("probe: no virtio-blk transport\n");
    return 0;
  }
  puts("virtio-blk at 0x");
  put_hex(base, 8);
  puts(" (");
  puts(how);
  puts(")\n");
  return base;
}

void bench_power_off(u32 code) {
  puts("DONE ");
  put_dec(code);
  putc('\n');
  outb(ISA_DEBUG_EXIT_PORT, 0); /* QEMU exits here (status 1); elsewhere nothing owns the port */
  outb(ACPI_SLEEP_CONTROL, S5_SLEEP_VALUE);
  for (;;) __asm__ volatile("hlt");
}
