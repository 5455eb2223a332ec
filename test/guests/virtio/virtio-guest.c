/*
 * The C test guest for virtio devices wired into a bunvmm VM: it finds each transport through the ACPI
 * tables (acpi.c), drives it with polling (it takes no interrupts: delivering one to this protected-mode
 * guest triple-faults on the nested KVM the tests run on), reports one line per step on COM1, prints
 * "DONE <failures>" and powers off.
 *
 * virtio-blk (the first LNRO0005 device with DeviceID 2):
 *   read0      read sector 0, print its first bytes
 *   write1     write a pattern to sector 1 (a read-only disk: "rowrite", the write must fail with IOERR)
 *   flush      FLUSH
 *   getid      GET_ID: print the serial
 *   readback   read sector 1 back and compare (not on a read-only disk)
 *   oob        read the sector at the capacity: IOERR
 *   discard    write sectors DISCARD_FIRST.., DISCARD them, read back zeroes
 *   wzeroes    write sectors ZEROES_FIRST.., WRITE_ZEROES with UNMAP, read back zeroes
 *   reset      submit a write to sector RESET_SECTOR, reset the device at once (Status = 0), set it up
 *              again: the fresh used ring must stay empty until a new request, which must succeed
 * virtio-rng (DeviceID 4), when present: "rng", two 32-byte requests, filled, different ("rng posted"
 *   once the first is notified).
 * virtio-console (DeviceID 3), when present: "console", one line sent on the transmit queue.
 *
 * Built with -DLOOP_IO the guest instead sets up the disk, prints "counter 0x<addr>", "used 0x<addr>" and
 * "avail 0x<addr>" (where its iteration count, used ring and available ring live, for a test reading
 * guest RAM) and loops forever: write
 * sector LOOP_FIRST + i % LOOP_SECTORS with a pattern naming i, read it back, compare ("loop FAIL i" on
 * a mismatch), "progress i" every PROGRESS_EVERY iterations.
 *
 * Built with -DLOOP_DEVICES it sets up the rng and the console, prints "counter 0x<addr>" and loops
 * forever: one RNG_BYTES rng request, then "tick <i in 8 hex digits>\n" on the console, counting the
 * iterations ("loop FAIL i" when a request fails).
 */
#include "acpi.h"
#include "runtime.h"
#include "virtio.h"

#define QUEUE_SIZE 8
#define POLL_LIMIT 10000000
#define NO_STATUS 0xff
#define MAX_BUFS 4
#define DISCARD_FIRST 16
#define ZEROES_FIRST 32
#define RANGE_SECTORS 16
#define RESET_SECTOR 2
#define RNG_BYTES 32
#define LOOP_FIRST 64
#define LOOP_SECTORS 32
#define PROGRESS_EVERY 64
#ifndef LOOP_IO
#define LOOP_IO 0
#endif
#ifndef LOOP_DEVICES
#define LOOP_DEVICES 0
#endif
#define TICK_BYTES 14 /* "tick " + 8 hex digits + "\n" */

/* One split virtqueue of QUEUE_SIZE entries, in static memory. */
struct vq {
  struct desc descs[QUEUE_SIZE] __attribute__((aligned(16)));
  volatile struct {
    u16 flags;
    u16 idx;
    u16 ring[QUEUE_SIZE];
    u16 used_event;
  } avail __attribute__((aligned(2)));
  volatile struct {
    u16 flags;
    u16 idx;
    struct used_elem ring[QUEUE_SIZE];
    u16 avail_event;
  } used __attribute__((aligned(4)));
  u32 base;
  u16 index;
  u16 last_used;
};

struct buf {
  void *addr;
  u32 len;
  int device_writes;
};

static struct vq blk_q, rng_q, con_rx, con_tx;
static struct outhdr header;
static struct range range;
static u8 data[RANGE_SECTORS * SECTOR] __attribute__((aligned(16)));
static volatile u8 status_byte;
static u32 failures;
static volatile u32 loop_iterations;

static u32 reg(u32 base, u32 off) { return mmio_read32(base + off); }
static void set_reg(u32 base, u32 off, u32 v) { mmio_write32(base + off, v); }

static void check(const char *step, int ok) {
  puts(step);
  puts(ok ? " ok\n" : " FAIL\n");
  if (!ok) failures++;
}

/* Posts one chain and notifies; does not wait. */
static void post(struct vq *q, const struct buf *bufs, int n) {
  for (int i = 0; i < n; i++) {
    u16 flags = (u16)((i + 1 < n ? DESC_F_NEXT : 0) | (bufs[i].device_writes ? DESC_F_WRITE : 0));
    q->descs[i] = (struct desc){(u32)bufs[i].addr, bufs[i].len, flags, (u16)(i + 1)};
  }
  q->avail.ring[q->avail.idx % QUEUE_SIZE] = 0;
  barrier(); /* descriptors and ring entry before the index */
  q->avail.idx = (u16)(q->avail.idx + 1);
  barrier(); /* the index before the notification */
  set_reg(q->base, REG_QUEUE_NOTIFY, q->index);
}

/* Waits (bounded) for the next used element; its length in *len. 0 on timeout. */
static int wait_used(struct vq *q, u32 *len) {
  for (u32 i = 0; i < POLL_LIMIT && q->used.idx == q->last_used; i++) {
  }
  if (q->used.idx == q->last_used) {
    puts("timeout waiting for the used ring\n");
    return 0;
  }
  barrier(); /* the index before the element */
  *len = q->used.ring[q->last_used % QUEUE_SIZE].len;
  q->last_used = (u16)(q->last_used + 1);
  set_reg(q->base, REG_INTERRUPT_ACK, reg(q->base, REG_INTERRUPT_STATUS));
  return 1;
}

static int queue_setup(struct vq *q, u32 base, u16 index) {
  memset(q, 0, sizeof *q);
  q->base = base;
  q->index = index;
  set_reg(base, REG_QUEUE_SEL, index);
  int ok = reg(base, REG_QUEUE_READY) == 0 && reg(base, REG_QUEUE_NUM_MAX) >= QUEUE_SIZE;
  set_reg(base, REG_QUEUE_NUM, QUEUE_SIZE);
  set_reg(base, REG_QUEUE_DESC_LOW, (u32)q->descs);
  set_reg(base, REG_QUEUE_DESC_HIGH, 0);
  set_reg(base, REG_QUEUE_AVAIL_LOW, (u32)&q->avail);
  set_reg(base, REG_QUEUE_AVAIL_HIGH, 0);
  set_reg(base, REG_QUEUE_USED_LOW, (u32)&q->used);
  set_reg(base, REG_QUEUE_USED_HIGH, 0);
  set_reg(base, REG_QUEUE_READY, 1);
  return ok && reg(base, REG_QUEUE_READY) == 1;
}

/* Reset, negotiate VERSION_1 only, set up `n` queues, DRIVER_OK. */
static int device_setup(u32 base, struct vq **queues, int n) {
  set_reg(base, REG_STATUS, 0);
  set_reg(base, REG_STATUS, S_ACKNOWLEDGE);
  set_reg(base, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
  set_reg(base, REG_DEVICE_FEATURES_SEL, 1);
  u32 high = reg(base, REG_DEVICE_FEATURES);
  set_reg(base, REG_DRIVER_FEATURES_SEL, 0);
  set_reg(base, REG_DRIVER_FEATURES, 0);
  set_reg(base, REG_DRIVER_FEATURES_SEL, 1);
  set_reg(base, REG_DRIVER_FEATURES, 1u << F_VERSION_1_HIGH_BIT);
  set_reg(base, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
  if (!(high & (1u << F_VERSION_1_HIGH_BIT)) || !(reg(base, REG_STATUS) & S_FEATURES_OK)) return 0;
  int ok = 1;
  for (int i = 0; i < n; i++) ok = ok && queue_setup(queues[i], base, (u16)i);
  set_reg(base, REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  return ok && reg(base, REG_STATUS) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

/* One block request: header, optional data or range segment, status byte. Returns the status. */
static u32 blk_request(u32 type, u32 sector, void *buf, u32 len, int device_writes, u32 *used_len) {
  header.type = type;
  header.ioprio = 0;
  header.sector = sector;
  status_byte = NO_STATUS;
  struct buf bufs[3];
  int n = 0;
  bufs[n++] = (struct buf){&header, sizeof header, 0};
  if (len) bufs[n++] = (struct buf){buf, len, device_writes};
  bufs[n++] = (struct buf){(void *)&status_byte, 1, 1};
  post(&blk_q, bufs, n);
  if (!wait_used(&blk_q, used_len)) return NO_STATUS;
  return status_byte;
}

static void print_text(const u8 *p, u32 n) {
  for (u32 i = 0; i < n && p[i]; i++) putc(p[i] >= ' ' && p[i] < 0x7f ? (char)p[i] : '.');
}

static int all_zero(const u8 *p, u32 n) {
  for (u32 i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

/* Fills RANGE_SECTORS from `first`, applies `type` to them, reads them back: all zero? */
static int zero_range(u32 type, u32 first, u32 flags) {
  u32 len = 0;
  memset(data, 0xa5, sizeof data);
  int ok = blk_request(BLK_T_OUT, first, data, sizeof data, 0, &len) == BLK_S_OK;
  range = (struct range){first, RANGE_SECTORS, flags};
  ok = ok && blk_request(type, 0, &range, sizeof range, 0, &len) == BLK_S_OK;
  memset(data, 0xff, sizeof data);
  ok = ok && blk_request(BLK_T_IN, first, data, sizeof data, 1, &len) == BLK_S_OK;
  return ok && all_zero(data, sizeof data);
}

static const char pattern[] = "written by the virtio test guest";

static void blk_tests(u32 base) {
  struct vq *queues[] = {&blk_q};
  set_reg(base, REG_DEVICE_FEATURES_SEL, 0);
  int read_only = (reg(base, REG_DEVICE_FEATURES) >> BLK_F_RO) & 1;
  check("blk", device_setup(base, queues, 1));
  u32 capacity = reg(base, REG_CONFIG + CFG_CAPACITY_LOW);
  puts("capacity ");
  put_dec(capacity);
  putc('\n');
  u32 len = 0;

  u32 s = blk_request(BLK_T_IN, 0, data, SECTOR, 1, &len);
  puts("sector0: ");
  print_text(data, 32);
  putc('\n');
  check("read0", s == BLK_S_OK && len == SECTOR + 1);

  memset(data, 0, SECTOR);
  memcpy(data, pattern, sizeof pattern);
  data[SECTOR - 1] = 0x5a;
  s = blk_request(BLK_T_OUT, 1, data, SECTOR, 0, &len);
  if (read_only) check("rowrite", s == BLK_S_IOERR);
  else check("write1", s == BLK_S_OK && len == 1);

  check("flush", blk_request(BLK_T_FLUSH, 0, 0, 0, 0, &len) == BLK_S_OK);

  static u8 id[BLK_ID_BYTES + 1];
  s = blk_request(BLK_T_GET_ID, 0, id, BLK_ID_BYTES, 1, &len);
  puts("serial: ");
  print_text(id, BLK_ID_BYTES);
  putc('\n');
  check("getid", s == BLK_S_OK && len == BLK_ID_BYTES + 1);

  if (!read_only) {
    memset(data, 0, SECTOR);
    s = blk_request(BLK_T_IN, 1, data, SECTOR, 1, &len);
    int same = s == BLK_S_OK && data[SECTOR - 1] == 0x5a;
    for (u32 i = 0; i < sizeof pattern; i++) same = same && data[i] == (u8)pattern[i];
    check("readback", same);
  }

  check("oob", blk_request(BLK_T_IN, capacity, data, SECTOR, 1, &len) == BLK_S_IOERR);
  if (read_only) return;

  check("discard", zero_range(BLK_T_DISCARD, DISCARD_FIRST, 0));
  check("wzeroes", zero_range(BLK_T_WRITE_ZEROES, ZEROES_FIRST, BLK_WRITE_ZEROES_FLAG_UNMAP));

  /* Reset with a request in flight: the device must publish nothing into the re-initialised ring. */
  memset(data, 0, SECTOR);
  memcpy(data, pattern, sizeof pattern);
  header = (struct outhdr){BLK_T_OUT, 0, RESET_SECTOR};
  status_byte = NO_STATUS;
  struct buf bufs[] = {{&header, sizeof header, 0}, {data, SECTOR, 0}, {(void *)&status_byte, 1, 1}};
  post(&blk_q, bufs, 3);
  set_reg(base, REG_STATUS, 0);
  int ok = reg(base, REG_STATUS) == 0 && device_setup(base, queues, 1);
  ok = ok && blk_q.used.idx == 0;
  ok = ok && blk_request(BLK_T_IN, 0, data, SECTOR, 1, &len) == BLK_S_OK && len == SECTOR + 1;
  check("reset", ok && blk_q.used.idx == 1);
}

static void rng_tests(u32 base) {
  struct vq *queues[] = {&rng_q};
  static u8 a[RNG_BYTES], b[RNG_BYTES];
  int ok = device_setup(base, queues, 1);
  u32 la = 0, lb = 0;
  struct buf ba = {a, RNG_BYTES, 1}, bb = {b, RNG_BYTES, 1};
  post(&rng_q, &ba, 1);
  puts("rng posted\n"); /* a test feeding a FIFO source waits for this */
  ok = ok && wait_used(&rng_q, &la);
  post(&rng_q, &bb, 1);
  ok = ok && wait_used(&rng_q, &lb);
  int differ = 0;
  for (u32 i = 0; i < RNG_BYTES; i++) differ = differ || a[i] != b[i];
  check("rng", ok && la == RNG_BYTES && lb == RNG_BYTES && !all_zero(a, RNG_BYTES) && differ);
}

static void console_tests(u32 base) {
  struct vq *queues[] = {&con_rx, &con_tx};
  static const char line[] = "hello from the virtio console\n";
  int ok = device_setup(base, queues, 2);
  u32 len = 1;
  struct buf out = {(void *)line, sizeof line - 1, 0};
  post(&con_tx, &out, 1);
  ok = ok && wait_used(&con_tx, &len);
  check("console", ok && len == 0);
}

static void loop_io(u32 base) {
  struct vq *queues[] = {&blk_q};
  check("blk", device_setup(base, queues, 1));
  puts("counter 0x");
  put_hex((u32)&loop_iterations, 8);
  puts("\nused 0x");
  put_hex((u32)&blk_q.used, 8);
  puts("\navail 0x");
  put_hex((u32)&blk_q.avail, 8);
  putc('\n');
  for (u32 i = 0;; i++) {
    u32 sector = LOOP_FIRST + i % LOOP_SECTORS, len = 0;
    memset(data, 0, SECTOR);
    memcpy(data, &i, sizeof i);
    memcpy(data + sizeof i, pattern, sizeof pattern);
    int ok = blk_request(BLK_T_OUT, sector, data, SECTOR, 0, &len) == BLK_S_OK;
    memset(data, 0, SECTOR);
    ok = ok && blk_request(BLK_T_IN, sector, data, SECTOR, 1, &len) == BLK_S_OK;
    u32 seen = 0;
    memcpy(&seen, data, sizeof seen);
    if (!ok || seen != i) {
      puts("loop FAIL ");
      put_dec(i);
      putc('\n');
    }
    loop_iterations = i + 1;
    if ((i + 1) % PROGRESS_EVERY == 0) {
      puts("progress ");
      put_dec(i + 1);
      putc('\n');
    }
  }
}

static void loop_devices(u32 rng, u32 console) {
  struct vq *rng_queues[] = {&rng_q};
  struct vq *con_queues[] = {&con_rx, &con_tx};
  check("rng", rng && device_setup(rng, rng_queues, 1));
  check("console", console && device_setup(console, con_queues, 2));
  puts("counter 0x");
  put_hex((u32)&loop_iterations, 8);
  putc('\n');
  static u8 bytes[RNG_BYTES];
  static char line[TICK_BYTES] = "tick 00000000\n";
  static const char digits[] = "0123456789abcdef";
  for (u32 i = 0;; i++) {
    u32 len = 0;
    struct buf in = {bytes, RNG_BYTES, 1};
    post(&rng_q, &in, 1);
    int ok = wait_used(&rng_q, &len) && len == RNG_BYTES;
    for (int d = 0; d < 8; d++) line[5 + d] = digits[(i >> (28 - 4 * d)) & 0xf];
    struct buf out = {line, TICK_BYTES, 0};
    post(&con_tx, &out, 1);
    ok = ok && wait_used(&con_tx, &len);
    if (!ok) {
      puts("loop FAIL ");
      put_dec(i);
      putc('\n');
    }
    loop_iterations = i + 1;
  }
}

void guest_main(void) {
  puts("virtio test guest\n");
  u32 blk = acpi_find_virtio(DEVICE_BLOCK);
  check("probe", blk != 0);
  if (!blk) power_off(failures);
  if (LOOP_IO) loop_io(blk); /* never returns */
  if (LOOP_DEVICES) loop_devices(acpi_find_virtio(DEVICE_RNG), acpi_find_virtio(DEVICE_CONSOLE));
  blk_tests(blk);
  u32 rng = acpi_find_virtio(DEVICE_RNG);
  if (rng) rng_tests(rng);
  u32 console = acpi_find_virtio(DEVICE_CONSOLE);
  if (console) console_tests(console);
  power_off(failures);
}
