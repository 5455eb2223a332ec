/*
 * What the network benchmark and stress guests (netbench.c, netbench-storm.c, hostile-net-vsock.c)
 * share: the virtio-mmio registers, finding a transport by device ID without knowing its address at
 * build time, a small polling virtio-net driver (one RX and one TX queue, no interrupts), a polling
 * virtio-vsock driver for one stream connection, and a power-off that works under bunvmm and QEMU.
 *
 * Finding a transport (netbench-net.c): first the ACPI way (acpi.c: RSDP, XSDT, FADT, DSDT, each
 * LNRO0005 device's Memory32Fixed window), which bunvmm and QEMU microvm with ACPI both describe; then
 * QEMU microvm's fixed range (0xFEB00000 + 0x200 * i, i < 24). A candidate must read the magic value,
 * version 2 and the wanted device ID.
 *
 * The net driver negotiates VERSION_1 and MAC only: no merged buffers, so one RX chain holds one whole
 * frame after the 12-byte virtio_net_hdr_v1 (QEMU leaves num_buffers unwritten then; nobody reads it).
 */
#ifndef BUNVMM_NETBENCH_NET_H
#define BUNVMM_NETBENCH_NET_H

#include "runtime.h"

/* virtio-mmio registers (offsets from the base), virtio 1.2 section 4.2.2. */
#include "virtio-regs.h"
#define VIRTIO_MMIO_WINDOW 0x200

#define VIRTIO_DEVICE_NET 1
#define VIRTIO_DEVICE_VSOCK 19
#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_FAILED 0x80
#define F_HIGH_VERSION_1 0 /* feature bit 32: bit 0 of the high word */
#define F_NET_MAC 5
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define USED_F_NO_NOTIFY 1

/* Both devices' rings: QEMU and bunvmm offer 256 entries per queue. */
#define RING_SIZE 256
/* One RX buffer: the header and a whole 1514-byte frame fit. */
#define NET_BUF_BYTES 2048
/* virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers. */
#define NET_HDR_BYTES 12
#define MAC_BYTES 6
#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define IPV4_HLEN 20
#define IPPROTO_UDP 17
#define UDP_HLEN 8
/* Ethernet + IPv4 + UDP headers in front of a datagram's payload. */
#define FRAME_HEADERS (ETH_HLEN + IPV4_HLEN + UDP_HLEN)

/* QEMU's isa-debug-exit, as the benchmark configures it (iobase=0xf4): QEMU exits with (value << 1) | 1. */
#define ISA_DEBUG_EXIT_PORT 0xf4

struct vq_desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct vq_avail {
  u16 flags;
  u16 idx;
  u16 ring[RING_SIZE];
  u16 used_event;
};
struct vq_used_elem {
  u32 id;
  u32 len;
};
struct vq_used {
  u16 flags;
  u16 idx;
  struct vq_used_elem ring[RING_SIZE];
  u16 avail_event;
};
/* A split virtqueue the driver owns, with a free list of descriptors. */
struct vq {
  struct vq_desc desc[RING_SIZE] __attribute__((aligned(16)));
  volatile struct vq_avail avail __attribute__((aligned(2)));
  volatile struct vq_used used __attribute__((aligned(4)));
  u32 base;
  u16 index;
  u16 last_used;
  u16 free[RING_SIZE];
  u32 nfree;
};

/* A transport's base whose DeviceID reads `device_id` (ACPI first, then QEMU microvm's range); 0: none. */
u32 find_transport(u32 device_id);
/* Prints "DONE <code>", then exits QEMU (isa-debug-exit) or powers bunvmm off (ACPI sleep register, S5). */
void bench_power_off(u32 code) __attribute__((noreturn));

/* Resets the device, negotiates VERSION_1 plus `low_features` (low word); 1 when FEATURES_OK stuck. */
int virtio_negotiate(u32 base, u32 low_features);
/* Sets up queue `index` with RING_SIZE entries, every descriptor free; 1 on success. */
int vq_setup(struct vq *q, u32 base, u16 index);
void vq_driver_ok(u32 base);
/* Posts a chain of `n` buffers (addresses, lengths, device-writable flags); 0 when not enough descriptors. */
int vq_post(struct vq *q, const u32 *addr, const u32 *len, const int *writable, u32 n);
/* Notifies the device unless it asked not to be (used ring flags). */
void vq_kick(struct vq *q);
/* Takes one used element (descriptors freed); 0 when none. */
int vq_take(struct vq *q, struct vq_used_elem *out);

/* The net device (at most one), once net_init has run. */
extern struct vq net_rx, net_tx;
extern u8 net_mac[MAC_BYTES];
int net_init(u32 base);
/* Posts every RX buffer. */
void net_rx_fill(void);
/* The next received frame (after the virtio header) and its length, or 0. Its buffer is the device's
 * again at the next net_rx_fill. */
u8 *net_rx_next(u32 *len);
/* Writes Ethernet/IPv4/UDP headers for `payload_bytes` at `frame` (which has room for them). */
void udp_headers(u8 *frame, const u8 *dst_mac, u32 src_ip, u32 dst_ip, u32 sport, u32 dport, u32 payload_bytes);

void put_be16(u8 *p, u32 v);
void put_be32(u8 *p, u32 v);
u32 get_be16(const u8 *p);
u32 get_be32(const u8 *p);

#endif
