/*
 * A hostile virtio-blk driver (test/stress/virtio-hostile.test.ts): it finds the transport
 * (bench-probe.c), then loops forever posting random descriptor chains (random addresses, lengths,
 * flags, next indices, loops, indirect tables, avail index jumps), legitimate requests now and then,
 * random accesses at random widths to the transport's registers and config space, and re-initialises
 * the device every so often (a random feature set, a random queue size), so that the device keeps
 * reaching its back-end. It never waits for a completion. Every FUZZ_REPORT iterations it prints
 * "fuzz <iterations> <legit writes posted>".
 *
 * What it may make the device write to the disk is bounded by construction, so the test can check
 * that the image outside sectors [0, ALLOWED_SECTORS) is untouched:
 *
 * - Every descriptor slot has a fixed role (slot % 4), kept by every rewrite, so a device reading a
 *   slot while it is being rewritten still sees that role's values:
 *     READ      device-readable (flags 0 or NEXT), inside the header area, length at most READ_MAX;
 *     WRITE     device-writable (WRITE, maybe NEXT), inside the scratch area;
 *     OUTSIDE   any flags, any length, an address whose low 32 bits are at or above RAM_BYTES (so
 *               outside guest RAM whatever the high half, even torn);
 *     INDIRECT  INDIRECT (maybe NEXT or WRITE), a 16-byte-aligned table in the indirect area whose
 *               entries follow the same roles, at most INDIRECT_MAX entries long.
 * - The header area is the only device-readable RAM, and every byte in it is at most 15 (request
 *   types up to 15, ioprio 0, sectors below 16). A header or a discard range assembled from such bytes,
 *   whatever the buffer boundaries, names a sector below 15 + 15 * 256 = 3855, or one at or above
 *   65536 (a byte in position 2 or higher), which is past the end of the 32 MiB test image; a data
 *   length or range length is likewise below 3855 sectors or refused. A chain carries at most
 *   (queue size + INDIRECT_MAX) * READ_MAX bytes of data. So every write lands below
 *   3855 + 3855 < ALLOWED_SECTORS.
 * - The device writes only into WRITE buffers (the scratch area, never readable) and the used ring.
 * - Queue set-up registers get only this guest's own ring addresses, misaligned ones or addresses
 *   outside RAM, and QueueReady = 1 is written only by the re-initialisation, which writes the whole
 *   set-up just before it; so a ready queue always has this guest's rings.
 */
#include "bench-probe.h"

#ifndef RAM_BYTES
#error "RAM_BYTES (the VM's RAM, below the 32-bit hole) must be defined by the build"
#endif
#ifndef FUZZ_SEED
#define FUZZ_SEED 0x5eed1234u
#endif

/* Must match the test's image: 32 MiB, so a sector at or above 65536 is past its end. */
#define ALLOWED_SECTORS 8192
#define TABLE_ENTRIES 1024
#define HEADER_AREA 4096
#define READ_MAX 512
#define MAX_TYPE_OR_SECTOR 15
#define SCRATCH_AREA 65536
#define WRITE_MAX 8192
#define INDIRECT_ENTRIES 256
#define INDIRECT_MAX 64
#define FUZZ_REPORT 4096
#define BURST_MAX 8
#define ROLE_READ 0
#define ROLE_WRITE 1
#define ROLE_OUTSIDE 2
#define ROLE_INDIRECT 3
#define ROLES 4
#define DESC_BYTES 16
#define HEADER_BYTES 16
/* A few values worth trying on any register: status bit combinations, edges, one bit. */
#define INTERESTING 10
#define RING_AND_RANGE_FEATURES \
  ((1u << F_RING_INDIRECT_DESC) | (1u << F_RING_EVENT_IDX) | (1u << F_BLK_DISCARD) | (1u << F_BLK_WRITE_ZEROES))

_Static_assert(ALLOWED_SECTORS > MAX_TYPE_OR_SECTOR + MAX_TYPE_OR_SECTOR * 256 + MAX_TYPE_OR_SECTOR + MAX_TYPE_OR_SECTOR * 256,
               "a discard range from header bytes must end inside the allowed sectors");
_Static_assert(ALLOWED_SECTORS > MAX_TYPE_OR_SECTOR + MAX_TYPE_OR_SECTOR * 256 +
                                     (TABLE_ENTRIES + INDIRECT_MAX) * READ_MAX / SECTOR_BYTES,
               "a write from header bytes must end inside the allowed sectors");

/* A split-ring descriptor with its address as two halves, so each half is one plain 32-bit store. */
struct desc {
  u32 addr_lo;
  u32 addr_hi;
  u32 len;
  u16 flags;
  u16 next;
};
_Static_assert(sizeof(struct desc) == DESC_BYTES, "struct desc is virtq_desc's layout");

struct avail {
  u16 flags;
  u16 idx;
  u16 ring[TABLE_ENTRIES];
  u16 used_event;
};
struct used {
  u16 flags;
  u16 idx;
  struct virtq_used_elem ring[TABLE_ENTRIES];
  u16 avail_event;
};

static volatile struct desc descs[TABLE_ENTRIES] __attribute__((aligned(16)));
static volatile struct avail avail __attribute__((aligned(2)));
static volatile struct used used __attribute__((aligned(4)));
/* The header area plus a guard of READ_MAX bytes (zero) that a READ buffer may run into. */
static volatile u8 headers[HEADER_AREA + READ_MAX] __attribute__((aligned(16)));
static volatile u8 scratch[SCRATCH_AREA + WRITE_MAX] __attribute__((aligned(16)));
/* Indirect tables, plus INDIRECT_MAX spare entries a table may run into. */
static volatile struct desc indirect[INDIRECT_ENTRIES + INDIRECT_MAX] __attribute__((aligned(16)));
static u32 base;
static u32 queue_size = 1;
static u32 queue_cap = 1;
static u32 rng = FUZZ_SEED;

static u32 rand32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}
static u32 below(u32 n) { return n ? rand32() % n : 0; }

static u32 reg(u32 off) { return mmio_read32(base + off); }
static void set_reg(u32 off, u32 v) { mmio_write32(base + off, v); }

/* A descriptor of `role`, in place; the address's high half is written first for OUTSIDE, last otherwise. */
static void make_desc(volatile struct desc *d, u32 role, u32 table_size) {
  u32 next = below(4) ? below(table_size) : rand32() & 0xffff;
  u32 lo, hi = 0, len, flags;
  if (role == ROLE_READ) {
    lo = (u32)headers + below(HEADER_AREA);
    len = below(READ_MAX + 1);
    flags = below(2) ? DESC_F_NEXT : 0;
  } else if (role == ROLE_WRITE) {
    lo = (u32)scratch + below(SCRATCH_AREA);
    len = below(WRITE_MAX + 1);
    flags = DESC_F_WRITE | (below(2) ? DESC_F_NEXT : 0);
  } else if (role == ROLE_OUTSIDE) {
    lo = RAM_BYTES + below(0u - RAM_BYTES);
    hi = below(4) == 0 ? rand32() : 0;
    len = rand32();
    flags = rand32() & 0xffff;
  } else {
    lo = (u32)indirect + DESC_BYTES * below(INDIRECT_ENTRIES);
    len = below(4) ? DESC_BYTES * (1 + below(INDIRECT_MAX)) : below(INDIRECT_MAX * DESC_BYTES + 1);
    flags = DESC_F_INDIRECT | (below(4) ? 0 : DESC_F_NEXT) | (below(4) ? 0 : DESC_F_WRITE);
  }
  /* Each field keeps its role's range whatever the device reads in between (a torn read is safe). */
  d->addr_hi = hi;
  d->addr_lo = lo;
  d->len = len;
  d->flags = (u16)flags;
  d->next = (u16)next;
}

static void randomize_descs(u32 n) {
  for (u32 i = 0; i < n; i++) {
    u32 k = below(TABLE_ENTRIES);
    make_desc(&descs[k], k % ROLES, queue_size);
  }
}

static void randomize_indirect(u32 n) {
  for (u32 i = 0; i < n; i++) {
    u32 k = below(INDIRECT_ENTRIES + INDIRECT_MAX);
    /* An indirect table inside an indirect table is refused by the device; keep the role anyway. */
    make_desc(&indirect[k], k % ROLES, INDIRECT_MAX);
  }
}

/* Header bytes: types and sectors up to 15, everything else 0 (see the file comment). */
static void randomize_headers(u32 n) {
  static const u8 types[] = {BLK_T_IN, BLK_T_OUT, BLK_T_FLUSH, BLK_T_GET_ID, BLK_T_DISCARD, BLK_T_WRITE_ZEROES, 2, 15};
  for (u32 i = 0; i < n; i++) {
    u32 slot = below(HEADER_AREA / HEADER_BYTES) * HEADER_BYTES;
    headers[slot] = types[below(sizeof types)];
    headers[slot + 8] = (u8)below(MAX_TYPE_OR_SECTOR + 1);
  }
}

static void post(u16 head) {
  avail.ring[avail.idx % queue_size] = head;
  barrier();
  avail.idx = (u16)(avail.idx + 1);
}

static void notify(void) {
  barrier();
  set_reg(REG_QUEUE_NOTIFY, 0);
}

/*
 * A well-formed request inside the allowed sectors: a read, a write (a sector of header-area bytes), or
 * a discard / write-zeroes whose one 16-byte range is a header slot read as {sector, num_sectors, flags}
 * (sector = a type, num_sectors = a sector byte, flags 0: all below 16). Returns 1 when it changes the disk.
 */
static int post_legit(void) {
  static const u32 types[] = {BLK_T_IN, BLK_T_OUT, BLK_T_DISCARD, BLK_T_WRITE_ZEROES};
  if (queue_size < 2 * ROLES) return 0;          /* no room for the four slots below */
  u32 h = ROLES * below(queue_size / ROLES / 2); /* a READ slot in the lower half: the header */
  u32 d = h + queue_size / 2;                   /* a READ slot in the upper half: data for a write */
  u32 s = h + ROLE_WRITE;                       /* a WRITE slot: status, or data for a read */
  u32 st = s + ROLES;                           /* a WRITE slot: status after read data */
  u32 slot = below(HEADER_AREA / HEADER_BYTES) * HEADER_BYTES;
  u32 type = types[below(sizeof types / sizeof types[0])];
  headers[slot] = (u8)type;
  headers[slot + 8] = (u8)below(MAX_TYPE_OR_SECTOR + 1);
  u16 first = (u16)(type == BLK_T_IN ? s : d);
  descs[h] = (struct desc){(u32)&headers[slot], 0, HEADER_BYTES, DESC_F_NEXT, first};
  if (type == BLK_T_IN) {
    descs[s] = (struct desc){(u32)&scratch[below(SCRATCH_AREA / 2)], 0, SECTOR_BYTES, DESC_F_WRITE | DESC_F_NEXT,
                             (u16)st};
    descs[st] = (struct desc){(u32)&scratch[below(SCRATCH_AREA)], 0, 1, DESC_F_WRITE, 0};
  } else {
    u32 data = type == BLK_T_OUT ? below(HEADER_AREA / SECTOR_BYTES) * SECTOR_BYTES
                                 : below(HEADER_AREA / HEADER_BYTES) * HEADER_BYTES;
    u32 len = type == BLK_T_OUT ? SECTOR_BYTES : HEADER_BYTES;
    descs[d] = (struct desc){(u32)&headers[data], 0, len, DESC_F_NEXT, (u16)s};
    descs[s] = (struct desc){(u32)&scratch[below(SCRATCH_AREA)], 0, 1, DESC_F_WRITE, 0};
  }
  post((u16)h);
  notify();
  return type != BLK_T_IN;
}

/* The whole handshake: reset, a random feature set with VERSION_1, a random queue size, our rings. */
static void reinit(void) {
  set_reg(REG_STATUS, 0);
  set_reg(REG_STATUS, S_ACKNOWLEDGE);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
  set_reg(REG_DEVICE_FEATURES_SEL, 0);
  /* Any subset of what the device offers in the low word (DISCARD, WRITE_ZEROES, INDIRECT_DESC, EVENT_IDX...), */
  /* the ring features and the range commands more often than not. */
  u32 low = reg(REG_DEVICE_FEATURES) & (rand32() | (below(4) ? RING_AND_RANGE_FEATURES : 0));
  set_reg(REG_DRIVER_FEATURES_SEL, 0);
  set_reg(REG_DRIVER_FEATURES, low);
  set_reg(REG_DRIVER_FEATURES_SEL, 1);
  set_reg(REG_DRIVER_FEATURES, 1u << F_HIGH_VERSION_1);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
  set_reg(REG_QUEUE_SEL, 0);
  u32 max = reg(REG_QUEUE_NUM_MAX);
  queue_cap = 1;
  while (queue_cap * 2 <= max && queue_cap * 2 <= TABLE_ENTRIES) queue_cap *= 2;
  queue_size = below(2) ? queue_cap : 1u << below(__builtin_ctz(queue_cap) + 1);
  avail.idx = 0;
  avail.flags = (u16)below(2);
  avail.used_event = (u16)rand32();
  set_reg(REG_QUEUE_NUM, queue_size);
  set_reg(REG_QUEUE_DESC_LOW, (u32)descs);
  set_reg(REG_QUEUE_DESC_HIGH, 0);
  set_reg(REG_QUEUE_AVAIL_LOW, (u32)&avail);
  set_reg(REG_QUEUE_AVAIL_HIGH, 0);
  set_reg(REG_QUEUE_USED_LOW, (u32)&used);
  set_reg(REG_QUEUE_USED_HIGH, 0);
  set_reg(REG_QUEUE_READY, 1);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

/* A value for a 32-bit write at `off`, kept safe for the queue set-up registers (file comment). */
static u32 register_value(u32 off) {
  static const u32 interesting[INTERESTING] = {0, 1, 3, 0xb, 0xf, 0x80, 0x40, 0xffffffff, 0x7fffffff, 0x100};
  u32 v = below(2) ? interesting[below(INTERESTING)] : below(2) ? rand32() : 1u << below(32);
  switch (off) {
    case REG_QUEUE_DESC_LOW:
      return below(3) == 0 ? (u32)descs : below(2) ? (u32)descs + 8 : RAM_BYTES + below(0u - RAM_BYTES);
    case REG_QUEUE_AVAIL_LOW:
      return below(3) == 0 ? (u32)&avail : below(2) ? (u32)&avail + 1 : RAM_BYTES + below(0u - RAM_BYTES);
    case REG_QUEUE_USED_LOW:
      return below(3) == 0 ? (u32)&used : below(2) ? (u32)&used + 2 : RAM_BYTES + below(0u - RAM_BYTES);
    case REG_QUEUE_DESC_HIGH:
    case REG_QUEUE_AVAIL_HIGH:
    case REG_QUEUE_USED_HIGH:
      return v;
    case REG_QUEUE_READY:
      return v == 1 ? 0 : v; /* only reinit() makes a queue ready */
    case REG_QUEUE_NUM:
      return (v & (v - 1)) == 0 && v > queue_cap ? queue_cap : v;
    default:
      return v;
  }
}

/* One random access to the transport at a random offset and width; writes are kept safe (above). */
static void register_access(void) {
  u32 off = below(VIRTIO_MMIO_WINDOW);
  u32 width = 1u << below(3);
  u32 a = base + off;
  if (below(3) == 0) {
    if (width == 1) (void)*(volatile u8 *)a;
    else if (width == 2) (void)*(volatile u16 *)a;
    else (void)*(volatile u32 *)a;
    return;
  }
  if (width == 4 && off % 4 == 0) {
    mmio_write32(a, register_value(off));
    return;
  }
  u32 v = rand32(); /* a byte, a word, or an unaligned dword: the transport must ignore them all */
  if (width == 1) *(volatile u8 *)a = (u8)v;
  else if (width == 2) *(volatile u16 *)a = (u16)v;
  else *(volatile u32 *)a = v;
}

void guest_main(void) {
  puts("hostile virtio-blk guest\n");
  base = find_virtio_blk();
  if (!base) bench_power_off(1);
  for (u32 i = 0; i < HEADER_AREA + READ_MAX; i++) headers[i] = 0;
  randomize_headers(HEADER_AREA / HEADER_BYTES);
  for (u32 k = 0; k < TABLE_ENTRIES; k++) make_desc(&descs[k], k % ROLES, TABLE_ENTRIES);
  for (u32 k = 0; k < INDIRECT_ENTRIES + INDIRECT_MAX; k++) make_desc(&indirect[k], k % ROLES, INDIRECT_MAX);
  reinit();
  puts("fuzzing\n");
  u32 legit_writes = 0;
  for (u32 n = 1;; n++) {
    u32 r = below(100);
    if (r < 35) {
      /* a random chain, maybe with fresh descriptors, sometimes a head outside the table */
      randomize_descs(below(4));
      post((u16)(below(32) ? below(queue_size) : rand32()));
      if (below(4)) notify();
    } else if (r < 50) {
      legit_writes += (u32)post_legit();
    } else if (r < 56) {
      randomize_descs(below(16));
      randomize_indirect(below(16));
      randomize_headers(below(16));
    } else if (r < 57) {
      avail.idx = (u16)(avail.idx + rand32()); /* a jump, likely more than the queue size ahead */
      notify();
    } else if (r < 60) {
      avail.flags = (u16)rand32();
      avail.used_event = (u16)rand32();
    } else if (r < 93) {
      for (u32 b = 1 + below(BURST_MAX); b; b--) register_access();
    } else {
      reinit();
    }
    if (n % FUZZ_REPORT == 0) {
      puts("fuzz ");
      put_dec(n);
      putc(' ');
      put_dec(legit_writes);
      putc('\n');
    }
  }
}
