/*
 * The polling virtqueue and virtio-net driver the network benchmark and stress guests share, transport
 * discovery and the power-off. See netbench-net.h.
 */
#include "netbench-net.h"
#include "acpi.h"

/* QEMU microvm's virtio-mmio transports. */
#define MICROVM_VIRTIO_BASE 0xfeb00000u
#define MICROVM_VIRTIO_COUNT 24
#define TTL 64

struct vq net_rx, net_tx;
u8 net_mac[MAC_BYTES];
static u8 rx_bufs[RING_SIZE][NET_BUF_BYTES] __attribute__((aligned(16)));

static u32 rd(u32 base, u32 off) { return mmio_read32(base + off); }
static void wr(u32 base, u32 off, u32 v) { mmio_write32(base + off, v); }

void put_be16(u8 *p, u32 v) {
  p[0] = (u8)(v >> 8);
  p[1] = (u8)v;
}
void put_be32(u8 *p, u32 v) {
  put_be16(p, v >> 16);
  put_be16(p + 2, v);
}
u32 get_be16(const u8 *p) { return (u32)p[0] << 8 | p[1]; }
u32 get_be32(const u8 *p) { return get_be16(p) << 16 | get_be16(p + 2); }

static int is_device(u32 base, u32 device_id) {
  return rd(base, REG_MAGIC) == VIRTIO_MAGIC && rd(base, REG_VERSION) == 2 && rd(base, REG_DEVICE_ID) == device_id;
}

u32 find_transport(u32 device_id) {
  u32 base = acpi_find_virtio(device_id);
  const char *how = "ACPI LNRO0005";
  if (base && !is_device(base, device_id)) base = 0;
  for (u32 i = 0; !base && i < MICROVM_VIRTIO_COUNT; i++) {
    if (is_device(MICROVM_VIRTIO_BASE + VIRTIO_MMIO_WINDOW * i, device_id)) {
      base = MICROVM_VIRTIO_BASE + VIRTIO_MMIO_WINDOW * i;
      how = "the microvm range";
    }
  }
  if (!base) return 0;
  puts("device ");
  put_dec(device_id);
  puts(" at 0x");
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

int virtio_negotiate(u32 base, u32 low_features) {
  wr(base, REG_STATUS, 0);
  wr(base, REG_STATUS, S_ACKNOWLEDGE);
  wr(base, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
  wr(base, REG_DEVICE_FEATURES_SEL, 0);
  u32 low = rd(base, REG_DEVICE_FEATURES);
  wr(base, REG_DEVICE_FEATURES_SEL, 1);
  u32 high = rd(base, REG_DEVICE_FEATURES);
  if (!(high & (1u << F_HIGH_VERSION_1)) || (low & low_features) != low_features) return 0;
  wr(base, REG_DRIVER_FEATURES_SEL, 0);
  wr(base, REG_DRIVER_FEATURES, low_features);
  wr(base, REG_DRIVER_FEATURES_SEL, 1);
  wr(base, REG_DRIVER_FEATURES, 1u << F_HIGH_VERSION_1);
  wr(base, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
  return (rd(base, REG_STATUS) & S_FEATURES_OK) != 0;
}

int vq_setup(struct vq *q, u32 base, u16 index) {
  memset(q, 0, sizeof *q);
  q->base = base;
  q->index = index;
  for (u32 i = 0; i < RING_SIZE; i++) q->free[i] = (u16)(RING_SIZE - 1 - i);
  q->nfree = RING_SIZE;
  wr(base, REG_QUEUE_SEL, index);
  if (rd(base, REG_QUEUE_READY) != 0 || rd(base, REG_QUEUE_NUM_MAX) < RING_SIZE) return 0;
  wr(base, REG_QUEUE_NUM, RING_SIZE);
  wr(base, REG_QUEUE_DESC_LOW, (u32)q->desc);
  wr(base, REG_QUEUE_DESC_HIGH, 0);
  wr(base, REG_QUEUE_AVAIL_LOW, (u32)&q->avail);
  wr(base, REG_QUEUE_AVAIL_HIGH, 0);
  wr(base, REG_QUEUE_USED_LOW, (u32)&q->used);
  wr(base, REG_QUEUE_USED_HIGH, 0);
  wr(base, REG_QUEUE_READY, 1);
  return rd(base, REG_QUEUE_READY) == 1;
}

void vq_driver_ok(u32 base) { wr(base, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK); }

int vq_post(struct vq *q, const u32 *addr, const u32 *len, const int *writable, u32 n) {
  if (n == 0 || q->nfree < n) return 0;
  u16 head = 0;
  u16 next = 0;
  for (u32 i = n; i-- > 0;) {
    u16 d = q->free[--q->nfree];
    q->desc[d] = (struct vq_desc){addr[i], len[i], (u16)((writable[i] ? DESC_F_WRITE : 0) | (i + 1 < n ? DESC_F_NEXT : 0)),
                                  i + 1 < n ? next : 0};
    next = d;
    head = d;
  }
  q->avail.ring[q->avail.idx % RING_SIZE] = head;
  barrier(); /* descriptors and ring entry before the index */
  q->avail.idx = (u16)(q->avail.idx + 1);
  return 1;
}

void vq_kick(struct vq *q) {
  barrier();
  if (!(q->used.flags & USED_F_NO_NOTIFY)) wr(q->base, REG_QUEUE_NOTIFY, q->index);
}

int vq_take(struct vq *q, struct vq_used_elem *out) {
  if (q->used.idx == q->last_used) return 0;
  barrier(); /* the index before the element */
  *out = q->used.ring[q->last_used % RING_SIZE];
  q->last_used = (u16)(q->last_used + 1);
  /* free the chain; a device that returns a bogus id frees nothing (bounded walk) */
  u16 d = (u16)(out->id % RING_SIZE);
  for (u32 i = 0; i < RING_SIZE && q->nfree < RING_SIZE; i++) {
    q->free[q->nfree++] = d;
    if (!(q->desc[d].flags & DESC_F_NEXT)) break;
    d = q->desc[d].next % RING_SIZE;
  }
  return 1;
}

int net_init(u32 base) {
  if (!virtio_negotiate(base, 1u << F_NET_MAC)) return 0;
  for (u32 i = 0; i < MAC_BYTES; i++) net_mac[i] = mmio_read8(base + REG_CONFIG + i);
  if (!vq_setup(&net_rx, base, 0) || !vq_setup(&net_tx, base, 1)) return 0;
  vq_driver_ok(base);
  return 1;
}

/* RX buffer i always sits on descriptor i (one-descriptor chains), so a used element's id names the
 * buffer it filled. */
void net_rx_fill(void) {
  static const int writable[1] = {1};
  while (net_rx.nfree) {
    u16 d = net_rx.free[net_rx.nfree - 1];
    u32 addr = (u32)rx_bufs[d];
    u32 len = NET_BUF_BYTES;
    vq_post(&net_rx, &addr, &len, writable, 1);
  }
  vq_kick(&net_rx);
}

u8 *net_rx_next(u32 *len) {
  struct vq_used_elem e;
  if (!vq_take(&net_rx, &e)) return 0;
  *len = e.len > NET_HDR_BYTES ? e.len - NET_HDR_BYTES : 0;
  if (*len > NET_BUF_BYTES - NET_HDR_BYTES) *len = NET_BUF_BYTES - NET_HDR_BYTES;
  return rx_bufs[e.id % RING_SIZE] + NET_HDR_BYTES;
}

static u32 ip_checksum(const u8 *p, u32 n) {
  u32 sum = 0;
  for (u32 i = 0; i < n; i += 2) sum += get_be16(p + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

void udp_headers(u8 *f, const u8 *dst_mac, u32 src_ip, u32 dst_ip, u32 sport, u32 dport, u32 payload_bytes) {
  memset(f, 0, FRAME_HEADERS);
  memcpy(f, dst_mac, MAC_BYTES);
  memcpy(f + MAC_BYTES, net_mac, MAC_BYTES);
  put_be16(f + 12, ETHERTYPE_IPV4);
  u8 *ip = f + ETH_HLEN;
  ip[0] = 0x45; /* version 4, five 32-bit words of header */
  put_be16(ip + 2, IPV4_HLEN + UDP_HLEN + payload_bytes);
  ip[8] = TTL;
  ip[9] = IPPROTO_UDP;
  put_be32(ip + 12, src_ip);
  put_be32(ip + 16, dst_ip);
  put_be16(ip + 10, ip_checksum(ip, IPV4_HLEN));
  u8 *udp = ip + IPV4_HLEN;
  put_be16(udp, sport);
  put_be16(udp + 2, dport);
  put_be16(udp + 4, UDP_HLEN + payload_bytes); /* checksum 0: none */
}
