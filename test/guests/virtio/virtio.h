/*
 * virtio-mmio (version 2) registers, status bits, split-ring structures and virtio-blk request types,
 * written from the virtio 1.2 spec for the C test guests.
 */
#ifndef BUNVMM_GUEST_VIRTIO_H
#define BUNVMM_GUEST_VIRTIO_H

#include "runtime.h"

/* Registers (offsets from a transport's base). */
#include "virtio-regs.h"

#define MAGIC VIRTIO_MAGIC
#define DEVICE_BLOCK 2
#define DEVICE_CONSOLE 3
#define DEVICE_RNG 4
#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_FAILED 0x80
#define F_VERSION_1_HIGH_BIT (32 - 32) /* bit 32: bit 0 of the high word */

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_T_DISCARD 11
#define BLK_T_WRITE_ZEROES 13
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_ID_BYTES 20
#define BLK_F_RO 5
#define BLK_WRITE_ZEROES_FLAG_UNMAP 1
#define SECTOR 512
#define CFG_CAPACITY_LOW 0

struct desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct used_elem {
  u32 id;
  u32 len;
};
struct outhdr {
  u32 type;
  u32 ioprio;
  u64 sector;
};
/* DISCARD / WRITE_ZEROES segment. */
struct range {
  u64 sector;
  u32 num_sectors;
  u32 flags;
};

#endif
