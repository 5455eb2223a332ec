/*
 * The virtio-mmio (version 2) register offsets from a transport's base and its magic value, written
 * from the virtio 1.2 spec, once for every C test guest.
 */
#ifndef BUNVMM_GUEST_VIRTIO_REGS_H
#define BUNVMM_GUEST_VIRTIO_REGS_H

#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_AVAIL_LOW 0x090
#define REG_QUEUE_AVAIL_HIGH 0x094
#define REG_QUEUE_USED_LOW 0x0a0
#define REG_QUEUE_USED_HIGH 0x0a4
#define REG_CONFIG 0x100

#define VIRTIO_MAGIC 0x74726976 /* "virt" */

#endif
