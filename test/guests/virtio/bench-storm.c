/*
 * The guest of the virtio-blk pause storm (test/stress/virtio-blk-storm.test.ts): a polling
 * virtio-blk driver (bench-probe.c finds the transport; VERSION_1 only, one request in flight,
 * avail.flags NO_INTERRUPT) that writes STORM_WRITES numbered sectors and reads each back at once:
 * write number k goes to sector STORM_FIRST + k % STORM_SECTORS and holds, in every 32-bit word,
 * STORM_MAGIC ^ k ^ word index. So at the end sector STORM_FIRST + s holds the last k with
 * k % STORM_SECTORS == s, and a lost write or one done twice (replayed late) leaves an older k there.
 *
 * It prints, on COM1:
 *   "used 0x<address>"                where its used ring is, for the test to read used.idx
 *   "progress <k>"                     every STORM_REPORT writes
 *   "storm <writes> <mismatches>"      at the end; a mismatch is a read-back that differed, or a failed request
 * then "DONE <mismatches>" and powers off. A request not completed within POLL_LIMIT spins ends the run
 * with DONE 255.
 */
#include "bench-probe.h"

#ifndef STORM_WRITES
#error "STORM_WRITES must be defined by the build"
#endif
#ifndef STORM_FIRST
#error "STORM_FIRST (the first sector written) must be defined by the build"
#endif
#ifndef STORM_SECTORS
#error "STORM_SECTORS (how many sectors are written, in turn) must be defined by the build"
#endif
#define STORM_MAGIC 0x53544f52u /* "STOR" */
#define STORM_REPORT 64

#define QUEUE_SIZE 4
#define POLL_LIMIT 100000000u
#define NO_STATUS 0xff
#define TIMEOUT_CODE 255
#define WORDS (SECTOR_BYTES / 4)

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
static struct blk_outhdr header;
static u32 data[WORDS] __attribute__((aligned(16)));
static volatile u8 status_byte;
static u32 base;
static u16 last_used;

static u32 reg(u32 off) { return mmio_read32(base + off); }
static void set_reg(u32 off, u32 v) { mmio_write32(base + off, v); }

static int setup(void) {
  set_reg(REG_STATUS, 0);
  set_reg(REG_STATUS, S_ACKNOWLEDGE);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
  set_reg(REG_DEVICE_FEATURES_SEL, 1);
  if (!(reg(REG_DEVICE_FEATURES) & (1u << F_HIGH_VERSION_1))) return 0;
  set_reg(REG_DRIVER_FEATURES_SEL, 0);
  set_reg(REG_DRIVER_FEATURES, 0);
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
  avail.flags = AVAIL_F_NO_INTERRUPT;
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  return reg(REG_STATUS) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

/* One request (header, the sector's data, status), waited for; returns the status byte. */
static u32 request(u32 type, u32 sector) {
  header = (struct blk_outhdr){type, 0, sector};
  status_byte = NO_STATUS;
  descs[0] = (struct virtq_desc){(u32)&header, sizeof header, DESC_F_NEXT, 1};
  descs[1] = (struct virtq_desc){(u32)data, SECTOR_BYTES, (u16)(DESC_F_NEXT | (type == BLK_T_IN ? DESC_F_WRITE : 0)), 2};
  descs[2] = (struct virtq_desc){(u32)&status_byte, 1, DESC_F_WRITE, 0};
  avail.ring[avail.idx % QUEUE_SIZE] = 0;
  barrier();
  avail.idx = (u16)(avail.idx + 1);
  barrier();
  set_reg(REG_QUEUE_NOTIFY, 0);
  u32 spins = 0;
  while (used.idx == last_used && ++spins < POLL_LIMIT) {
  }
  if (used.idx == last_used) {
    puts("timeout waiting for the used ring\n");
    bench_power_off(TIMEOUT_CODE);
  }
  barrier();
  last_used = (u16)(last_used + 1);
  return status_byte;
}

void guest_main(void) {
  puts("virtio-blk storm guest\n");
  base = find_virtio_blk();
  if (!base || !setup()) bench_power_off(1);
  puts("used 0x");
  put_hex((u32)&used, 8);
  putc('\n');
  u32 mismatches = 0;
  for (u32 k = 0; k < STORM_WRITES; k++) {
    u32 sector = STORM_FIRST + k % STORM_SECTORS;
    for (u32 w = 0; w < WORDS; w++) data[w] = STORM_MAGIC ^ k ^ w;
    if (request(BLK_T_OUT, sector) != BLK_S_OK) mismatches++;
    for (u32 w = 0; w < WORDS; w++) data[w] = 0;
    if (request(BLK_T_IN, sector) != BLK_S_OK) mismatches++;
    for (u32 w = 0; w < WORDS; w++) mismatches += data[w] != (STORM_MAGIC ^ k ^ w);
    if ((k + 1) % STORM_REPORT == 0) {
      puts("progress ");
      put_dec(k + 1);
      putc('\n');
    }
  }
  puts("storm ");
  put_dec(STORM_WRITES);
  putc(' ');
  put_dec(mismatches);
  putc('\n');
  bench_power_off(mismatches);
}
