/*
 * The virtio-blk benchmark guest (bench/virtio-blk): the same ELF runs under bunvmm and QEMU microvm.
 * It finds its transport (bench-probe.c), negotiates VERSION_1 and FLUSH when offered (a driver that
 * leaves FLUSH out is taken to want no write cache: Linux assumes so, and QEMU then syncs the image
 * after every write; with it both VMMs keep their write cache, and the guest never sends a flush), sets
 * up queue 0 with interrupts
 * suppressed (avail.flags NO_INTERRUPT: it polls the used ring, as it cannot take interrupts on the
 * nested KVM these benchmarks run on), and runs eight phases of BENCH_REQUESTS 4 KiB requests each:
 *
 *   read-seq-qd1  read-rand-qd1  write-seq-qd1  write-rand-qd1     one request in flight
 *   read-seq-qdN  read-rand-qdN  write-seq-qdN  write-rand-qdN     N = BENCH_DEPTH in flight
 *
 * "seq" walks the disk from sector 0 in 4 KiB steps (wrapping at the capacity), "rand" picks 4 KiB
 * blocks with a fixed linear congruential generator, the same sequence on every run. Each phase is
 * bracketed by two lines on COM1, which the harness timestamps as they reach the VMM's stdout:
 *
 *   #B <phase>
 *   #E <phase> <requests> <failed>
 *
 * The guest measures nothing itself. After the last phase it prints "DONE <failed requests>" and
 * powers off (QEMU: isa-debug-exit; bunvmm: the ACPI sleep register). A queue the device cannot serve
 * (a used-ring wait over POLL_LIMIT spins) ends the run with DONE 255.
 */
#include "bench-probe.h"

#ifndef BENCH_REQUESTS
#error "BENCH_REQUESTS (requests per phase) must be defined by the build"
#endif
#ifndef BENCH_DEPTH
#error "BENCH_DEPTH (requests in flight in the deep phases) must be defined by the build"
#endif

/* Descriptors in the queue; three per request (header, data, status), so at most QUEUE_SIZE / 3 in flight. */
#define QUEUE_SIZE 128
#define MAX_DEPTH (QUEUE_SIZE / 3)
#define BLOCK_BYTES 4096
#define SECTORS_PER_BLOCK (BLOCK_BYTES / SECTOR_BYTES)
#define POLL_LIMIT 100000000u
#define NO_STATUS 0xff
#define TIMEOUT_CODE 255
/* Numerical Recipes' 32-bit LCG: any fixed sequence would do, this one has full period. */
#define LCG_MUL 1664525u
#define LCG_ADD 1013904223u
#define LCG_SEED 0x12345678u

_Static_assert(BENCH_DEPTH >= 1 && BENCH_DEPTH <= MAX_DEPTH, "BENCH_DEPTH must fit the queue (3 descriptors each)");

struct avail {
  u16 flags;
  u16 idx;
  u16 ring[QUEUE_SIZE];
  u16 used_event;
};
struct used {
  u16 flags;
  u16 idx;
  struct virtq_used_elem ring[QUEUE_SIZE];
  u16 avail_event;
};

static struct virtq_desc descs[QUEUE_SIZE] __attribute__((aligned(16)));
static volatile struct avail avail __attribute__((aligned(2)));
static volatile struct used used __attribute__((aligned(4)));
static struct blk_outhdr headers[MAX_DEPTH];
static u8 buffers[MAX_DEPTH][BLOCK_BYTES] __attribute__((aligned(BLOCK_BYTES)));
static volatile u8 status[MAX_DEPTH];
static u32 base;
static u16 last_used;
static u32 blocks;
static u32 lcg = LCG_SEED;

static u32 reg(u32 off) { return mmio_read32(base + off); }
static void set_reg(u32 off, u32 v) { mmio_write32(base + off, v); }

static int setup(void) {
  set_reg(REG_STATUS, 0);
  set_reg(REG_STATUS, S_ACKNOWLEDGE);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
  set_reg(REG_DEVICE_FEATURES_SEL, 1);
  if (!(reg(REG_DEVICE_FEATURES) & (1u << F_HIGH_VERSION_1))) return 0;
  set_reg(REG_DEVICE_FEATURES_SEL, 0);
  u32 low = reg(REG_DEVICE_FEATURES) & (1u << F_BLK_FLUSH);
  set_reg(REG_DRIVER_FEATURES_SEL, 0);
  set_reg(REG_DRIVER_FEATURES, low);
  set_reg(REG_DRIVER_FEATURES_SEL, 1);
  set_reg(REG_DRIVER_FEATURES, 1u << F_HIGH_VERSION_1);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
  if (!(reg(REG_STATUS) & S_FEATURES_OK)) return 0;
  set_reg(REG_QUEUE_SEL, 0);
  if (reg(REG_QUEUE_READY) != 0 || reg(REG_QUEUE_NUM_MAX) < QUEUE_SIZE) return 0;
  set_reg(REG_QUEUE_NUM, QUEUE_SIZE);
  set_reg(REG_QUEUE_DESC_LOW, (u32)descs);
  set_reg(REG_QUEUE_DESC_HIGH, 0);
  set_reg(REG_QUEUE_AVAIL_LOW, (u32)&avail);
  set_reg(REG_QUEUE_AVAIL_HIGH, 0);
  set_reg(REG_QUEUE_USED_LOW, (u32)&used);
  set_reg(REG_QUEUE_USED_HIGH, 0);
  set_reg(REG_QUEUE_READY, 1);
  if (reg(REG_QUEUE_READY) != 1) return 0;
  avail.flags = AVAIL_F_NO_INTERRUPT; /* polled: the device need not interrupt */
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  return reg(REG_STATUS) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

/* Slot k owns descriptors 3k (header), 3k + 1 (data) and 3k + 2 (status); its chain's head is 3k. */
static void prepare_slot(u32 k, u32 type, u32 sector) {
  u16 d = (u16)(3 * k);
  headers[k] = (struct blk_outhdr){type, 0, sector};
  status[k] = NO_STATUS;
  descs[d] = (struct virtq_desc){(u32)&headers[k], sizeof headers[k], DESC_F_NEXT, (u16)(d + 1)};
  u16 data_flags = (u16)(DESC_F_NEXT | (type == BLK_T_IN ? DESC_F_WRITE : 0));
  descs[d + 1] = (struct virtq_desc){(u32)buffers[k], BLOCK_BYTES, data_flags, (u16)(d + 2)};
  descs[d + 2] = (struct virtq_desc){(u32)&status[k], 1, DESC_F_WRITE, 0};
  avail.ring[avail.idx % QUEUE_SIZE] = d;
  barrier(); /* the ring entry before the index */
  avail.idx = (u16)(avail.idx + 1);
}

static u32 next_sector(int random, u32 i) {
  if (!random) return (i % blocks) * SECTORS_PER_BLOCK;
  lcg = lcg * LCG_MUL + LCG_ADD;
  return ((lcg >> 8) % blocks) * SECTORS_PER_BLOCK;
}

/* Runs one phase: n requests, up to depth in flight, refilling after each poll. Returns the failed count. */
static u32 phase(const char *name, u32 type, int random, u32 depth, u32 n) {
  u32 submitted = 0, completed = 0, failed = 0;
  puts("#B ");
  puts(name);
  putc('\n');
  for (; submitted < depth && submitted < n; submitted++) prepare_slot(submitted, type, next_sector(random, submitted));
  barrier(); /* the index before the notification */
  set_reg(REG_QUEUE_NOTIFY, 0);
  while (completed < n) {
    u32 spins = 0;
    while (used.idx == last_used && ++spins < POLL_LIMIT) {
    }
    if (used.idx == last_used) {
      puts("timeout waiting for the used ring\n");
      bench_power_off(TIMEOUT_CODE);
    }
    barrier(); /* the index before the elements */
    u16 upto = used.idx;
    int refilled = 0;
    while (last_used != upto) {
      u32 k = used.ring[last_used % QUEUE_SIZE].id / 3;
      last_used = (u16)(last_used + 1);
      completed++;
      if (status[k] != BLK_S_OK) failed++;
      if (submitted < n) {
        prepare_slot(k, type, next_sector(random, submitted));
        submitted++;
        refilled = 1;
      }
    }
    if (refilled) {
      barrier();
      set_reg(REG_QUEUE_NOTIFY, 0);
    }
  }
  puts("#E ");
  puts(name);
  putc(' ');
  put_dec(n);
  putc(' ');
  put_dec(failed);
  putc('\n');
  return failed;
}

void guest_main(void) {
  puts("virtio-blk benchmark guest\n");
  base = find_virtio_blk();
  if (!base) bench_power_off(1);
  if (!setup()) {
    puts("virtio-blk set-up failed\n");
    bench_power_off(1);
  }
  blocks = reg(REG_CONFIG + CFG_CAPACITY_LOW) / SECTORS_PER_BLOCK;
  puts("blocks ");
  put_dec(blocks);
  puts(" depth ");
  put_dec(BENCH_DEPTH);
  puts(" requests ");
  put_dec(BENCH_REQUESTS);
  putc('\n');
  if (!blocks) bench_power_off(1);
  u32 failed = 0;
  failed += phase("read-seq-qd1", BLK_T_IN, 0, 1, BENCH_REQUESTS);
  failed += phase("read-rand-qd1", BLK_T_IN, 1, 1, BENCH_REQUESTS);
  failed += phase("write-seq-qd1", BLK_T_OUT, 0, 1, BENCH_REQUESTS);
  failed += phase("write-rand-qd1", BLK_T_OUT, 1, 1, BENCH_REQUESTS);
  failed += phase("read-seq-qdN", BLK_T_IN, 0, BENCH_DEPTH, BENCH_REQUESTS);
  failed += phase("read-rand-qdN", BLK_T_IN, 1, BENCH_DEPTH, BENCH_REQUESTS);
  failed += phase("write-seq-qdN", BLK_T_OUT, 0, BENCH_DEPTH, BENCH_REQUESTS);
  failed += phase("write-rand-qdN", BLK_T_OUT, 1, BENCH_DEPTH, BENCH_REQUESTS);
  bench_power_off(failed);
}
