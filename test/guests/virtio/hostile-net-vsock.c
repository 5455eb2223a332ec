/*
 * A hostile guest for virtio-net and virtio-vsock (test/stress/virtio-net-hostile.test.ts): it finds
 * both transports, sets each device up properly, then for ever (the test decides how long) does at
 * random, from FUZZ_SEED:
 *
 *   - a raw descriptor chain on a random queue of a random device: 1-4 descriptors at random ring
 *     slots, random lengths (0, small, header-sized, frame-sized, just over the limits, huge), random
 *     NEXT/WRITE flags, random next indices (loops included), sometimes an indirect table; then the
 *     avail index moved by one or by a random jump, and a notification;
 *   - a vsock packet with a random header (random op including unknown ones, random type, ports and
 *     CIDs, a `len` that disagrees with the bytes that follow);
 *   - a well-formed virtio-net frame;
 *   - a random value written to a random register of a random transport;
 *   - every so often, and after a register write, the device is reset and set up again.
 *
 * Guest memory safety (so the guest itself keeps running and the test can tell a VMM fault from a
 * guest crash): every address the guest hands a device to write (WRITE descriptors, indirect tables'
 * WRITE entries, ring addresses written to the queue registers) lies in [SCRATCH_BASE, RAM_BYTES) or
 * beyond the end of RAM, never in the guest's own image, rings or stack below SCRATCH_BASE. Readable
 * buffers may point anywhere.
 *
 * "fuzz <iteration>" every PROGRESS_EVERY iterations tells the test the guest is alive.
 */
#include "netbench-net.h"
#include "netbench-vsock.h"

#if !defined(FUZZ_SEED) || !defined(RAM_BYTES)
#error "FUZZ_SEED and RAM_BYTES come from the build"
#endif

#define SCRATCH_BASE 0x00800000u /* 8 MiB: above the guest's image, rings and stack */
#define PROGRESS_EVERY 1024
#define REINIT_EVERY 256
#define DESC_F_INDIRECT 4
#define INDIRECT_ENTRIES 4
#define MAX_CHAIN 4
#define NET_MAX_FRAME_BYTES 65550
#define QUEUE_COUNT_NET 2
#define QUEUE_COUNT_VSOCK 3

static u32 state = FUZZ_SEED;
static u32 rnd(void) { /* xorshift32 */
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}
static u32 below(u32 n) { return rnd() % n; }

struct dev {
  u32 base;
  u32 nqueues;
  struct vq q[QUEUE_COUNT_VSOCK];
};
static struct dev devs[2];
static u32 ndevs;
static u8 readable_buf[2048];

/* An address a device may write: in the scratch region, or beyond RAM. */
static u32 writable_address(void) {
  if (below(4) == 0) return RAM_BYTES + below(0x10000000u);
  return SCRATCH_BASE + below(RAM_BYTES - SCRATCH_BASE);
}
/* Any address: ours, scratch, beyond RAM, low memory, the top of the 32-bit space. */
static u32 any_address(void) {
  switch (below(5)) {
  case 0: return (u32)readable_buf;
  case 1: return writable_address();
  case 2: return below(SCRATCH_BASE);
  case 3: return 0xfffff000u + below(0x1000);
  default: return RAM_BYTES + below(0x1000);
  }
}
static u32 random_length(void) {
  static const u32 lengths[] = {0, 1, NET_HDR_BYTES - 1, NET_HDR_BYTES, VSOCK_HDR_BYTES - 1, VSOCK_HDR_BYTES,
                                60, 1514 + NET_HDR_BYTES, 4096, NET_HDR_BYTES + NET_MAX_FRAME_BYTES + 1,
                                0x7fffffffu, 0xffffffffu};
  return below(3) == 0 ? below(0x20000) : lengths[below(sizeof lengths / sizeof lengths[0])];
}

static void setup(struct dev *d) {
  virtio_negotiate(d->base, 0);
  for (u32 i = 0; i < d->nqueues; i++) vq_setup(&d->q[i], d->base, (u16)i);
  vq_driver_ok(d->base);
}

static void raw_chain(struct dev *d) {
  struct vq *q = &d->q[below(d->nqueues)];
  u32 n = 1 + below(MAX_CHAIN);
  u16 head = (u16)below(RING_SIZE);
  u16 at = head;
  for (u32 i = 0; i < n; i++) {
    u16 next = (u16)(below(8) == 0 ? below(0x10000) : below(RING_SIZE));
    u16 flags = (u16)(rnd() & (DESC_F_NEXT | DESC_F_WRITE));
    if (i + 1 < n) flags |= DESC_F_NEXT;
    u32 addr = flags & DESC_F_WRITE ? writable_address() : any_address();
    u32 len = random_length();
    if (below(16) == 0) { /* an indirect table in scratch, filled by us */
      u32 table = SCRATCH_BASE + below(RAM_BYTES - SCRATCH_BASE - INDIRECT_ENTRIES * sizeof(struct vq_desc));
      struct vq_desc *t = (struct vq_desc *)table;
      for (u32 k = 0; k < INDIRECT_ENTRIES; k++) {
        u16 f = (u16)(rnd() & (DESC_F_NEXT | DESC_F_WRITE | DESC_F_INDIRECT));
        t[k] = (struct vq_desc){f & DESC_F_WRITE ? writable_address() : any_address(), random_length(), f,
                                (u16)below(INDIRECT_ENTRIES + 2)};
      }
      flags = (u16)((flags & ~DESC_F_WRITE) | DESC_F_INDIRECT);
      addr = table;
      len = below(2) ? INDIRECT_ENTRIES * sizeof(struct vq_desc) : random_length();
    }
    q->desc[at] = (struct vq_desc){addr, len, flags, next};
    at = next % RING_SIZE;
  }
  q->avail.ring[q->avail.idx % RING_SIZE] = head;
  barrier();
  q->avail.idx = (u16)(q->avail.idx + (below(16) == 0 ? rnd() : 1));
  barrier();
  mmio_write32(d->base + REG_QUEUE_NOTIFY, below(8) == 0 ? rnd() : q->index);
}

/* A well-formed frame on the net device's TX queue (if it is the net device). */
static void good_frame(struct dev *d) {
  static u8 frame[NET_HDR_BYTES + 64];
  static const u8 broadcast[MAC_BYTES] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  memset(frame, 0, sizeof frame);
  udp_headers(frame + NET_HDR_BYTES, broadcast, 0x0a000002, 0x0a000001, 9, 9, 64 - FRAME_HEADERS);
  struct vq *q = &d->q[1];
  u16 slot = (u16)below(RING_SIZE);
  q->desc[slot] = (struct vq_desc){(u32)frame, sizeof frame, 0, 0};
  q->avail.ring[q->avail.idx % RING_SIZE] = slot;
  barrier();
  q->avail.idx = (u16)(q->avail.idx + 1);
  barrier();
  mmio_write32(d->base + REG_QUEUE_NOTIFY, 1);
}

static void put32(u8 *p, u32 v) {
  for (int i = 0; i < 4; i++) p[i] = (u8)(v >> (8 * i));
}

/* A vsock packet with a random header on the vsock device's TX queue. */
static void random_vsock_packet(struct dev *d) {
  static u8 pkt[VSOCK_HDR_BYTES + 256];
  for (u32 i = 0; i < sizeof pkt; i++) pkt[i] = (u8)rnd();
  put32(pkt + VSOCK_HDR_SRC_CID, below(2) ? (u32)vsock_guest_cid : rnd());
  put32(pkt + VSOCK_HDR_SRC_CID + 4, below(4) ? 0 : rnd());
  put32(pkt + VSOCK_HDR_DST_CID, below(2) ? VSOCK_HOST_CID : rnd());
  put32(pkt + VSOCK_HDR_DST_CID + 4, below(4) ? 0 : rnd());
  put32(pkt + VSOCK_HDR_SRC_PORT, below(2) ? 1024 + below(4) : rnd());
  put32(pkt + VSOCK_HDR_DST_PORT, below(2) ? 1024 + below(4) : rnd());
  put32(pkt + VSOCK_HDR_LEN, below(2) ? below(257) : random_length());
  pkt[VSOCK_HDR_TYPE] = (u8)(below(2) ? VSOCK_TYPE_STREAM : rnd());
  pkt[VSOCK_HDR_TYPE + 1] = 0;
  pkt[VSOCK_HDR_OP] = (u8)below(12); /* 0 and 8..11 are no op at all */
  pkt[VSOCK_HDR_OP + 1] = (u8)(below(8) == 0 ? rnd() : 0);
  struct vq *q = &d->q[1];
  u16 a = (u16)below(RING_SIZE);
  u16 b = (u16)((a + 1) % RING_SIZE);
  u32 split = below(2);
  if (split) {
    q->desc[a] = (struct vq_desc){(u32)pkt, VSOCK_HDR_BYTES, DESC_F_NEXT, b};
    q->desc[b] = (struct vq_desc){(u32)pkt + VSOCK_HDR_BYTES, below(257), 0, 0};
  } else {
    q->desc[a] = (struct vq_desc){(u32)pkt, VSOCK_HDR_BYTES + below(257), 0, 0};
  }
  q->avail.ring[q->avail.idx % RING_SIZE] = a;
  barrier();
  q->avail.idx = (u16)(q->avail.idx + 1);
  barrier();
  mmio_write32(d->base + REG_QUEUE_NOTIFY, 1);
}

static void random_register(struct dev *d) {
  u32 off = below(VIRTIO_MMIO_WINDOW / 4) * 4;
  u32 v = rnd();
  if (off == REG_QUEUE_DESC_LOW || off == REG_QUEUE_AVAIL_LOW || off == REG_QUEUE_USED_LOW)
    v = writable_address();
  else if (off == REG_QUEUE_DESC_HIGH || off == REG_QUEUE_AVAIL_HIGH || off == REG_QUEUE_USED_HIGH)
    v = below(2) ? 0 : v;
  else if (off == REG_QUEUE_SEL || off == REG_QUEUE_NUM)
    v = below(2) ? below(RING_SIZE + 2) : v;
  if (below(2))
    mmio_write32(d->base + off, v);
  else
    (void)mmio_read32(d->base + off);
}

void guest_main(void) {
  puts("hostile-net-vsock\n");
  u32 net = find_transport(VIRTIO_DEVICE_NET);
  u32 vsock = find_transport(VIRTIO_DEVICE_VSOCK);
  if (net) devs[ndevs++] = (struct dev){.base = net, .nqueues = QUEUE_COUNT_NET};
  if (vsock) devs[ndevs++] = (struct dev){.base = vsock, .nqueues = QUEUE_COUNT_VSOCK};
  if (!ndevs) {
    puts("no virtio-net or virtio-vsock transport\n");
    bench_power_off(1);
  }
  for (u32 i = 0; i < ndevs; i++) setup(&devs[i]);
  if (vsock) vsock_guest_cid = mmio_read32(vsock + REG_CONFIG);
  puts("fuzzing\n");
  for (u32 iter = 1;; iter++) {
    struct dev *d = &devs[below(ndevs)];
    int is_net = d->base == net;
    switch (below(8)) {
    case 0:
    case 1:
    case 2: raw_chain(d); break;
    case 3:
    case 4:
      if (is_net)
        good_frame(d);
      else
        random_vsock_packet(d);
      break;
    case 5:
      random_register(d);
      if (below(4) == 0) setup(d);
      break;
    default:
      if (!is_net) random_vsock_packet(d);
      else raw_chain(d);
    }
    if (iter % REINIT_EVERY == 0) setup(&devs[below(ndevs)]);
    if (iter % PROGRESS_EVERY == 0) {
      puts("fuzz ");
      put_dec(iter);
      putc('\n');
    }
  }
}
