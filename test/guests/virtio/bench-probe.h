/*
 * What the benchmark and stress guests (bench-blk.c, bench-storm.c, hostile-blk.c) share: the virtio-mmio
 * register offsets and status bits, finding the virtio-blk transport without knowing its address at
 * build time, and a power-off that works under bunvmm and under QEMU.
 *
 * Finding the transport (bench-probe.c): every candidate base is checked for the magic value
 * 0x74726976, version 2 and device ID 2. Candidates come first from the ACPI tables: the RSDP (legacy
 * scan of 0xE0000-0xFFFFF on 16-byte boundaries, checksum checked), the XSDT (or the RSDT for a revision
 * 0 RSDP), the FADT's X_DSDT (or DSDT), then every `LNRO0005` device in the DSDT and the SSDTs, whose
 * _CRS Memory32Fixed descriptor gives the window. bunvmm and QEMU microvm (with ACPI) both describe
 * their virtio-mmio transports that way. If that finds nothing, QEMU microvm's fixed range is probed
 * (0xFEB00000 + 0x200 * i, i < 24).
 */
#ifndef BUNVMM_BENCH_PROBE_H
#define BUNVMM_BENCH_PROBE_H

#include "runtime.h"

/* virtio-mmio registers (offsets from the base), virtio 1.2 section 4.2.2. */
#include "virtio-regs.h"
/* The size of one transport's window. */
#define VIRTIO_MMIO_WINDOW 0x200

#define VIRTIO_DEVICE_BLOCK 2
#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_FAILED 0x80
/* Feature bits in the high word (bit 32 + n is bit n of DeviceFeatures with DeviceFeaturesSel = 1). */
#define F_HIGH_VERSION_1 (32 - 32)
/* Feature bits in the low word. */
#define F_BLK_FLUSH 9
#define F_BLK_DISCARD 13
#define F_BLK_WRITE_ZEROES 14
#define F_RING_INDIRECT_DESC 28
#define F_RING_EVENT_IDX 29

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4
#define AVAIL_F_NO_INTERRUPT 1

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_T_DISCARD 11
#define BLK_T_WRITE_ZEROES 13
#define BLK_S_OK 0
#define SECTOR_BYTES 512
/* Offset of the 64-bit capacity (in sectors) in virtio-blk's config space. */
#define CFG_CAPACITY_LOW 0

/* QEMU's isa-debug-exit, as the benchmarks configure it (iobase=0xf4): QEMU exits with (value << 1) | 1. */
#define ISA_DEBUG_EXIT_PORT 0xf4

struct virtq_desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct virtq_used_elem {
  u32 id;
  u32 len;
};
struct blk_outhdr {
  u32 type;
  u32 ioprio;
  u64 sector;
};

/* The virtio-blk transport's base (version 2, device ID 2), or 0 if none was found. Prints how it was found. */
u32 find_virtio_blk(void);
/* Prints "DONE <code>", then exits QEMU (isa-debug-exit) or powers bunvmm off (ACPI sleep register, S5). */
void bench_power_off(u32 code) __attribute__((noreturn));

#endif
