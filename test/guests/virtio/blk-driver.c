/*
 * A polling virtio-blk driver over virtio-mmio (version 2), written from the virtio 1.2 spec for
 * bunvmm's tests. It cannot take interrupts (delivering one to a protected-mode guest triple-faults on
 * the nested KVM the tests run on), so after each notification it polls the used ring, with a bound.
 *
 * Steps, each reported on COM1 as one line the test checks:
 *   probe     magic, version 2, device ID 2 (block)
 *   features  reset, ACKNOWLEDGE, DRIVER, VERSION_1 only, FEATURES_OK read back
 *   queue     queue 0 of QUEUE_SIZE entries, rings in static memory, ready, DRIVER_OK
 *   read0     read sector 0, print its first bytes as text
 *   write1    write a pattern to sector 1
 *   flush     FLUSH
 *   getid     GET_ID: print the serial
 *   readback  read sector 1 back and compare
 *   oob       read the sector at the capacity: expect IOERR
 * then "DONE <failures>" and power-off.
 *
 * VIRTIO_MMIO_BASE (the transport's address) comes from the build: the first transport's fixed place in
 * a bunvmm VM, or wherever a test puts it (virtio-guest.c finds its transports through ACPI instead).
 */
#include "runtime.h"
#include "virtio.h"

#ifndef VIRTIO_MMIO_BASE
#error "VIRTIO_MMIO_BASE must be defined by the build"
#endif

#define QUEUE_SIZE 8
#define POLL_LIMIT 10000000
#define NO_STATUS 0xff

struct avail {
  u16 flags;
  u16 idx;
  u16 ring[QUEUE_SIZE];
  u16 used_event;
};
struct used {
  u16 flags;
  u16 idx;
  struct used_elem ring[QUEUE_SIZE];
  u16 avail_event;
};

static struct desc descs[QUEUE_SIZE] __attribute__((aligned(16)));
static volatile struct avail avail __attribute__((aligned(2)));
static volatile struct used used __attribute__((aligned(4)));
static struct outhdr header;
static u8 data[SECTOR] __attribute__((aligned(16)));
static volatile u8 status_byte;
static u16 last_used;
static u32 failures;

static u32 reg(u32 off) { return mmio_read32(VIRTIO_MMIO_BASE + off); }
static void set_reg(u32 off, u32 v) { mmio_write32(VIRTIO_MMIO_BASE + off, v); }

static void check(const char *step, int ok) {
  puts(step);
  puts(ok ? " ok\n" : " FAIL\n");
  if (!ok) failures++;
}

/* One request: header, optional data buffer (device-writable for reads), status byte. */
static u32 request(u32 type, u32 sector, void *buf, u32 len, int device_writes, u32 *used_len) {
  header.type = type;
  header.ioprio = 0;
  header.sector = sector;
  status_byte = NO_STATUS;
  int n = 0;
  descs[n] = (struct desc){(u32)&header, sizeof header, DESC_F_NEXT, (u16)(n + 1)};
  n++;
  if (len) {
    descs[n] = (struct desc){(u32)buf, len, (u16)(DESC_F_NEXT | (device_writes ? DESC_F_WRITE : 0)), (u16)(n + 1)};
    n++;
  }
  descs[n] = (struct desc){(u32)&status_byte, 1, DESC_F_WRITE, 0};
  avail.ring[avail.idx % QUEUE_SIZE] = 0;
  barrier(); /* descriptors and ring entry before the index */
  avail.idx = (u16)(avail.idx + 1);
  barrier(); /* the index before the notification */
  set_reg(REG_QUEUE_NOTIFY, 0);
  for (u32 i = 0; i < POLL_LIMIT && used.idx == last_used; i++) {
  }
  if (used.idx == last_used) {
    puts("timeout waiting for the used ring\n");
    return NO_STATUS;
  }
  barrier(); /* the index before the element */
  *used_len = used.ring[last_used % QUEUE_SIZE].len;
  last_used = (u16)(last_used + 1);
  set_reg(REG_INTERRUPT_ACK, reg(REG_INTERRUPT_STATUS));
  return status_byte;
}

static int setup(void) {
  int probe = reg(REG_MAGIC) == MAGIC && reg(REG_VERSION) == 2 && reg(REG_DEVICE_ID) == DEVICE_BLOCK;
  check("probe", probe);
  if (!probe) return 0;
  set_reg(REG_STATUS, 0);
  set_reg(REG_STATUS, S_ACKNOWLEDGE);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
  set_reg(REG_DEVICE_FEATURES_SEL, 1);
  u32 high = reg(REG_DEVICE_FEATURES);
  set_reg(REG_DRIVER_FEATURES_SEL, 0);
  set_reg(REG_DRIVER_FEATURES, 0);
  set_reg(REG_DRIVER_FEATURES_SEL, 1);
  set_reg(REG_DRIVER_FEATURES, 1u << F_VERSION_1_HIGH_BIT);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
  int features = (high & (1u << F_VERSION_1_HIGH_BIT)) && (reg(REG_STATUS) & S_FEATURES_OK);
  check("features", features);
  if (!features) {
    set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FAILED);
    return 0;
  }
  set_reg(REG_QUEUE_SEL, 0);
  int queue = reg(REG_QUEUE_READY) == 0 && reg(REG_QUEUE_NUM_MAX) >= QUEUE_SIZE;
  set_reg(REG_QUEUE_NUM, QUEUE_SIZE);
  set_reg(REG_QUEUE_DESC_LOW, (u32)descs);
  set_reg(REG_QUEUE_DESC_HIGH, 0);
  set_reg(REG_QUEUE_AVAIL_LOW, (u32)&avail);
  set_reg(REG_QUEUE_AVAIL_HIGH, 0);
  set_reg(REG_QUEUE_USED_LOW, (u32)&used);
  set_reg(REG_QUEUE_USED_HIGH, 0);
  set_reg(REG_QUEUE_READY, 1);
  queue = queue && reg(REG_QUEUE_READY) == 1;
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  queue = queue && reg(REG_STATUS) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  check("queue", queue);
  return queue;
}

static void print_text(const u8 *p, u32 n) {
  for (u32 i = 0; i < n && p[i]; i++) putc(p[i] >= ' ' && p[i] < 0x7f ? (char)p[i] : '.');
}

void guest_main(void) {
  puts("virtio-blk test guest\n");
  if (!setup()) power_off(failures ? failures : 1);
  u32 capacity = reg(REG_CONFIG + CFG_CAPACITY_LOW);
  puts("capacity ");
  put_dec(capacity);
  putc('\n');
  u32 len = 0;

  u32 s = request(BLK_T_IN, 0, data, SECTOR, 1, &len);
  puts("sector0: ");
  print_text(data, 32);
  putc('\n');
  check("read0", s == BLK_S_OK && len == SECTOR + 1);

  static const char pattern[] = "written by the virtio test guest";
  memset(data, 0, SECTOR);
  memcpy(data, pattern, sizeof pattern);
  data[SECTOR - 1] = 0x5a;
  s = request(BLK_T_OUT, 1, data, SECTOR, 0, &len);
  check("write1", s == BLK_S_OK && len == 1);

  s = request(BLK_T_FLUSH, 0, 0, 0, 0, &len);
  check("flush", s == BLK_S_OK);

  static u8 id[BLK_ID_BYTES + 1];
  s = request(BLK_T_GET_ID, 0, id, BLK_ID_BYTES, 1, &len);
  puts("serial: ");
  print_text(id, BLK_ID_BYTES);
  putc('\n');
  check("getid", s == BLK_S_OK && len == BLK_ID_BYTES + 1);

  memset(data, 0, SECTOR);
  s = request(BLK_T_IN, 1, data, SECTOR, 1, &len);
  int same = s == BLK_S_OK && data[SECTOR - 1] == 0x5a;
  for (u32 i = 0; i < sizeof pattern; i++) same = same && data[i] == (u8)pattern[i];
  check("readback", same);

  s = request(BLK_T_IN, capacity, data, SECTOR, 1, &len);
  check("oob", s == BLK_S_IOERR);

  power_off(failures);
}
