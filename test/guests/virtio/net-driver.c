/*
 * A polling virtio-net driver over virtio-mmio (version 2), written from the virtio 1.2 spec for
 * bunvmm's tests: it sends one UDP datagram to the host side of the TAP, waits for the answer, and
 * echoes the answer's payload back. Like the block driver it takes no interrupts; while it waits for a
 * received frame it reads InterruptStatus in its loop, so every turn is an MMIO exit (the test's
 * chance to move frames from the TAP), with a bound.
 *
 * Steps, each reported on COM1 as one line the test checks:
 *   probe     magic, version 2, device ID 1 (network)
 *   features  VERSION_1 and MAC only (so no merged buffers: num_buffers must be 1), FEATURES_OK
 *   mac       the MAC from config space is the one the test configured (printed)
 *   queues    receive queue 0 and transmit queue 1 of QUEUE_SIZE entries, DRIVER_OK
 *   tx        a UDP datagram GUEST_IP:GUEST_PORT -> HOST_IP:HOST_PORT, completed with used length 0
 *   rx        a UDP datagram to GUEST_PORT arrives (other frames are skipped), num_buffers 1 (printed)
 *   echo      its payload sent back the same way
 * then "DONE <failures>" and power-off.
 *
 * The frame goes to the Ethernet broadcast address: the driver does not resolve the TAP's MAC (the
 * host has a permanent neighbour entry for the guest, so its answer needs no ARP either).
 */
#include "runtime.h"

/*
 * Where the transport is: VIRTIO_MMIO_BASE when the build defines it (a test machine with the device
 * at a fixed address), otherwise the first LNRO0005 device of the DSDT whose DeviceID is 1 (a bunvmm
 * VM; link acpi.c).
 */
#ifdef VIRTIO_MMIO_BASE
static u32 base = VIRTIO_MMIO_BASE;
#else
#include "acpi.h"
static u32 base;
#endif

/*
 * Extra steps for bunvmm VM tests (test/vmm/virtio-net.test.ts), chosen by defines:
 *   VM_OVERSIZE    after the echo, one frame longer than the MTU allows ("oversize": it completes, the
 *                  device drops and counts it), then the echo once more ("after")
 *   VM_LATE_RX     after "tx", post no receive buffer until a byte arrives on COM1 ("waiting"), then
 *                  post them and receive LATE_COUNT datagrams, printing "late <payload>" for each
 *   VM_CRASH       after "tx", execute an invalid instruction: with no IDT the CPU triple-faults
 *   VM_HOLD        after "tx", wait forever (the test stops the VM)
 */
#ifndef LATE_COUNT
#define LATE_COUNT 3
#endif
#define OVERSIZE_PAYLOAD 1600
#define COM1_LSR 5
#define LSR_DATA_READY 1
#if !defined(HOST_IP) || !defined(GUEST_IP) || !defined(HOST_PORT) || !defined(GUEST_PORT)
#error "HOST_IP, GUEST_IP (as 32-bit numbers), HOST_PORT and GUEST_PORT must be defined by the build"
#endif
#if !defined(GUEST_MAC_HI) || !defined(GUEST_MAC_LO)
#error "GUEST_MAC_HI (first 2 bytes) and GUEST_MAC_LO (last 4 bytes) must be defined by the build"
#endif

#include "virtio-regs.h"

#define MAGIC VIRTIO_MAGIC
#define DEVICE_NET 1
#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_FAILED 0x80
#define F_VERSION_1_HIGH_BIT 0 /* feature bit 32: bit 0 of the high word */
#define F_MAC 5
#define CFG_MAC 0
#define MAC_BYTES 6

#define DESC_F_WRITE 2

#define RXQ 0
#define TXQ 1
#define QUEUE_SIZE 8
#define BUF_BYTES 2048
/* virtio_net_hdr_v1: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers. */
#define NET_HDR 12
#define NET_HDR_NUM_BUFFERS 10
#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define IPV4_HLEN 20
#define IPPROTO_UDP 17
#define UDP_HLEN 8
#define TTL 64
/* Turns of the wait loop (one MMIO exit each) before giving up on a received frame. */
#ifndef RX_POLL_LIMIT
#define RX_POLL_LIMIT 200000
#endif
#define TX_POLL_LIMIT 10000000

struct desc {
  u64 addr;
  u32 len;
  u16 flags;
  u16 next;
};
struct avail {
  u16 flags;
  u16 idx;
  u16 ring[QUEUE_SIZE];
  u16 used_event;
};
struct used_elem {
  u32 id;
  u32 len;
};
struct used {
  u16 flags;
  u16 idx;
  struct used_elem ring[QUEUE_SIZE];
  u16 avail_event;
};
struct queue {
  struct desc descs[QUEUE_SIZE] __attribute__((aligned(16)));
  volatile struct avail avail __attribute__((aligned(2)));
  volatile struct used used __attribute__((aligned(4)));
  u16 last_used;
};

static struct queue queues[2];
static u8 rx_bufs[QUEUE_SIZE][BUF_BYTES] __attribute__((aligned(16)));
static u8 tx_buf[BUF_BYTES] __attribute__((aligned(16)));
static u8 mac[MAC_BYTES];
static u32 failures;

static u32 reg(u32 off) { return mmio_read32(base + off); }
static void set_reg(u32 off, u32 v) { mmio_write32(base + off, v); }

static void check(const char *step, int ok) {
  puts(step);
  puts(ok ? " ok\n" : " FAIL\n");
  if (!ok) failures++;
}

static void put_be16(u8 *p, u32 v) {
  p[0] = (u8)(v >> 8);
  p[1] = (u8)v;
}
static void put_be32(u8 *p, u32 v) {
  put_be16(p, v >> 16);
  put_be16(p + 2, v);
}
static u32 get_be16(const u8 *p) { return (u32)p[0] << 8 | p[1]; }

static u32 ip_checksum(const u8 *p, u32 n) {
  u32 sum = 0;
  for (u32 i = 0; i < n; i += 2) sum += get_be16(p + i);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/* Makes buffer `i` (device-writable) available on the receive queue. */
static void post_rx(u32 i) {
  struct queue *q = &queues[RXQ];
  q->descs[i] = (struct desc){(u32)rx_bufs[i], BUF_BYTES, DESC_F_WRITE, 0};
  q->avail.ring[q->avail.idx % QUEUE_SIZE] = (u16)i;
  barrier(); /* descriptor and ring entry before the index */
  q->avail.idx = (u16)(q->avail.idx + 1);
}

/* Sends a UDP datagram with `payload`; returns the used length, or 0xffffffff on a timeout. */
static u32 send_udp(const u8 *payload, u32 n) {
  u8 *f = tx_buf + NET_HDR;
  memset(tx_buf, 0, NET_HDR + ETH_HLEN + IPV4_HLEN + UDP_HLEN);
  memset(f, 0xff, MAC_BYTES); /* broadcast */
  memcpy(f + MAC_BYTES, mac, MAC_BYTES);
  put_be16(f + 12, ETHERTYPE_IPV4);
  u8 *ip = f + ETH_HLEN;
  ip[0] = 0x45; /* version 4, five 32-bit words of header */
  put_be16(ip + 2, IPV4_HLEN + UDP_HLEN + n);
  ip[8] = TTL;
  ip[9] = IPPROTO_UDP;
  put_be32(ip + 12, GUEST_IP);
  put_be32(ip + 16, HOST_IP);
  put_be16(ip + 10, ip_checksum(ip, IPV4_HLEN));
  u8 *udp = ip + IPV4_HLEN;
  put_be16(udp, GUEST_PORT);
  put_be16(udp + 2, HOST_PORT);
  put_be16(udp + 4, UDP_HLEN + n); /* checksum 0: none */
  memcpy(udp + UDP_HLEN, payload, n);
  struct queue *q = &queues[TXQ];
  q->descs[0] = (struct desc){(u32)tx_buf, NET_HDR + ETH_HLEN + IPV4_HLEN + UDP_HLEN + n, 0, 0};
  q->avail.ring[q->avail.idx % QUEUE_SIZE] = 0;
  barrier();
  q->avail.idx = (u16)(q->avail.idx + 1);
  barrier();
  set_reg(REG_QUEUE_NOTIFY, TXQ);
  for (u32 i = 0; i < TX_POLL_LIMIT && q->used.idx == q->last_used; i++) {
  }
  if (q->used.idx == q->last_used) return 0xffffffff;
  barrier();
  u32 len = q->used.ring[q->last_used % QUEUE_SIZE].len;
  q->last_used = (u16)(q->last_used + 1);
  set_reg(REG_INTERRUPT_ACK, reg(REG_INTERRUPT_STATUS));
  return len;
}

/*
 * Waits for a UDP datagram to GUEST_PORT; copies its payload (NUL-terminated) into `out`. Returns
 * its length, or -1 on a timeout. Frames that are not that datagram go back to the device.
 */
static int receive_udp(u8 *out, u32 room, u32 *num_buffers) {
  struct queue *q = &queues[RXQ];
  for (u32 turn = 0; turn < RX_POLL_LIMIT; turn++) {
    if (q->used.idx == q->last_used) {
      reg(REG_INTERRUPT_STATUS); /* an exit: the test moves frames from the TAP here */
      continue;
    }
    barrier();
    struct used_elem e = q->used.ring[q->last_used % QUEUE_SIZE];
    q->last_used = (u16)(q->last_used + 1);
    set_reg(REG_INTERRUPT_ACK, reg(REG_INTERRUPT_STATUS));
    const u8 *b = rx_bufs[e.id % QUEUE_SIZE];
    const u8 *f = b + NET_HDR;
    const u8 *ip = f + ETH_HLEN;
    const u8 *udp = ip + (ip[0] & 0xf) * 4;
    int ours = e.len >= NET_HDR + ETH_HLEN + IPV4_HLEN + UDP_HLEN && get_be16(f + 12) == ETHERTYPE_IPV4 &&
               ip[9] == IPPROTO_UDP && get_be16(udp + 2) == GUEST_PORT;
    if (ours) {
      *num_buffers = b[NET_HDR_NUM_BUFFERS] | (u32)b[NET_HDR_NUM_BUFFERS + 1] << 8;
      u32 n = get_be16(udp + 4) - UDP_HLEN;
      if (n >= room) n = room - 1;
      memcpy(out, udp + UDP_HLEN, n);
      out[n] = 0;
      post_rx(e.id % QUEUE_SIZE);
      set_reg(REG_QUEUE_NOTIFY, RXQ);
      return (int)n;
    }
    post_rx(e.id % QUEUE_SIZE);
    set_reg(REG_QUEUE_NOTIFY, RXQ);
  }
  return -1;
}

static int setup_queue(u32 index) {
  struct queue *q = &queues[index];
  set_reg(REG_QUEUE_SEL, index);
  int ok = reg(REG_QUEUE_READY) == 0 && reg(REG_QUEUE_NUM_MAX) >= QUEUE_SIZE;
  set_reg(REG_QUEUE_NUM, QUEUE_SIZE);
  set_reg(REG_QUEUE_DESC_LOW, (u32)q->descs);
  set_reg(REG_QUEUE_DESC_HIGH, 0);
  set_reg(REG_QUEUE_AVAIL_LOW, (u32)&q->avail);
  set_reg(REG_QUEUE_AVAIL_HIGH, 0);
  set_reg(REG_QUEUE_USED_LOW, (u32)&q->used);
  set_reg(REG_QUEUE_USED_HIGH, 0);
  set_reg(REG_QUEUE_READY, 1);
  return ok && reg(REG_QUEUE_READY) == 1;
}

static int setup(void) {
  int probe = reg(REG_MAGIC) == MAGIC && reg(REG_VERSION) == 2 && reg(REG_DEVICE_ID) == DEVICE_NET;
  check("probe", probe);
  if (!probe) return 0;
  set_reg(REG_STATUS, 0);
  set_reg(REG_STATUS, S_ACKNOWLEDGE);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
  set_reg(REG_DEVICE_FEATURES_SEL, 0);
  u32 low = reg(REG_DEVICE_FEATURES);
  set_reg(REG_DEVICE_FEATURES_SEL, 1);
  u32 high = reg(REG_DEVICE_FEATURES);
  set_reg(REG_DRIVER_FEATURES_SEL, 0);
  set_reg(REG_DRIVER_FEATURES, 1u << F_MAC);
  set_reg(REG_DRIVER_FEATURES_SEL, 1);
  set_reg(REG_DRIVER_FEATURES, 1u << F_VERSION_1_HIGH_BIT);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
  int features = (high & (1u << F_VERSION_1_HIGH_BIT)) && (low & (1u << F_MAC)) &&
                 (reg(REG_STATUS) & S_FEATURES_OK);
  check("features", features);
  if (!features) {
    set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FAILED);
    return 0;
  }
  for (u32 i = 0; i < MAC_BYTES; i++) mac[i] = mmio_read8(base + REG_CONFIG + CFG_MAC + i);
  u32 hi = (u32)mac[0] << 8 | mac[1];
  u32 lo = (u32)mac[2] << 24 | (u32)mac[3] << 16 | (u32)mac[4] << 8 | mac[5];
  puts("mac ");
  for (u32 i = 0; i < MAC_BYTES; i++) {
    put_hex(mac[i], 2);
    if (i + 1 < MAC_BYTES) putc(':');
  }
  putc('\n');
  check("mac", hi == GUEST_MAC_HI && lo == GUEST_MAC_LO);
  int queues_ok = setup_queue(RXQ) && setup_queue(TXQ);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  queues_ok = queues_ok && reg(REG_STATUS) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  check("queues", queues_ok);
  return queues_ok;
}

#ifdef VM_LATE_RX
/* Waits (bounded) for a byte on COM1, the test's signal; returns it, or -1. */
static int wait_serial_byte(void) {
  for (u32 i = 0; i < RX_POLL_LIMIT; i++)
    if (inb(COM1_PORT + COM1_LSR) & LSR_DATA_READY) return inb(COM1_PORT);
  return -1;
}
#endif

void guest_main(void) {
  puts("virtio-net test guest\n");
#ifndef VIRTIO_MMIO_BASE
  base = acpi_find_virtio(DEVICE_NET);
  if (base == 0) {
    check("probe", 0);
    power_off(1);
  }
#endif
  if (!setup()) power_off(failures ? failures : 1);
#ifndef VM_LATE_RX
  for (u32 i = 0; i < QUEUE_SIZE; i++) post_rx(i);
  barrier();
  set_reg(REG_QUEUE_NOTIFY, RXQ);
#endif

  static const char hello[] = "hello from the C guest";
  check("tx", send_udp((const u8 *)hello, sizeof hello - 1) == 0);
#ifdef VM_CRASH
  __asm__ volatile("ud2");
#endif
#ifdef VM_HOLD
  for (;;) reg(REG_INTERRUPT_STATUS);
#endif
#ifdef VM_LATE_RX
  puts("waiting\n");
  check("signal", wait_serial_byte() >= 0);
  for (u32 i = 0; i < QUEUE_SIZE; i++) post_rx(i);
  barrier();
  set_reg(REG_QUEUE_NOTIFY, RXQ);
  for (u32 k = 0; k < LATE_COUNT; k++) {
    static u8 late[256];
    u32 nb = 0;
    int got = receive_udp(late, sizeof late, &nb);
    check("late", got > 0);
    if (got <= 0) break;
    puts("late ");
    puts((const char *)late);
    putc('\n');
  }
  power_off(failures);
#endif

  static u8 reply[256];
  u32 num_buffers = 0;
  int n = receive_udp(reply, sizeof reply, &num_buffers);
  puts("reply: ");
  if (n >= 0) puts((const char *)reply);
  puts("\nnum_buffers ");
  put_dec(num_buffers);
  putc('\n');
  check("rx", n > 0 && num_buffers == 1);

  check("echo", n > 0 && send_udp(reply, (u32)n) == 0);
#ifdef VM_OVERSIZE
  static u8 big[OVERSIZE_PAYLOAD];
  memset(big, 'x', sizeof big);
  check("oversize", send_udp(big, sizeof big) == 0);
  check("after", n > 0 && send_udp(reply, (u32)n) == 0);
#endif
  power_off(failures);
}
