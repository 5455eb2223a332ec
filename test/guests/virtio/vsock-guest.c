/*
 * A polling virtio-vsock driver for bunvmm's VM tests (test/vmm/vsock.test.ts), written from the virtio
 * 1.2 spec (section 5.10): it finds the transport through the DSDT (acpi.c; DeviceID 19), negotiates
 * VERSION_1 only, sets up the receive (0), transmit (1) and event (2) queues, and then serves stream
 * connections forever, taking no interrupts:
 *   - it listens on LISTEN_PORT: a host connection (through bunvmm's Unix socket) is accepted and every
 *     byte received is echoed back on it, in order. Received bytes wait in the connection's CONN_BUF ring
 *     until echoed; the ring is what we advertise as buf_alloc, and fwd_cnt counts bytes echoed, so a
 *     host that stops reading stalls only its own connection (the guest runs out of the host's credit,
 *     stops echoing, and the host runs out of ours);
 *   - it connects to host port HOST_PORT from CLIENT_PORT, sends GREETING once connected, and prints
 *     each payload the host sends there as "host says: <bytes>".
 * A payload starting with RESET_COMMAND on an echo connection resets the device instead (Status = 0:
 * bunvmm drops every connection, the host sides read EOF) and sets it up again ("reset done").
 * Every packet we send carries our buf_alloc and fwd_cnt. CREDIT_REQUEST is answered with CREDIT_UPDATE;
 * RST, or SHUTDOWN once the ring is echoed, ends a connection (we answer SHUTDOWN with RST).
 *
 * COM1 lines: "ready cid <n>", "connected", "host says: ...", "accepted <port>", "closed <port>",
 * "event <id>" (TRANSPORT_RESET drops every connection), "FAIL <what>".
 */
#include "acpi.h"
#include "runtime.h"
#include "virtio.h"

#if !defined(LISTEN_PORT) || !defined(HOST_PORT) || !defined(CLIENT_PORT)
#error "LISTEN_PORT, HOST_PORT and CLIENT_PORT must be defined by the build"
#endif

#define DEVICE_VSOCK 19
#define QUEUE_SIZE 8
#define RXQ 0
#define TXQ 1
#define EVQ 2
#define HOST_CID 2
#define TYPE_STREAM 1
#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQUEST 7
#define SHUTDOWN_RCV 1
#define SHUTDOWN_SEND 2
#define EVENT_BYTES 4
#define RX_BUF 2048
/* The most payload we put in one packet. */
#define TX_PAYLOAD 1024
/* Our receive ring per connection: what we advertise as buf_alloc. */
#define CONN_BUF 4096
#define MAX_CONNS 8
#define TX_POLL_LIMIT 10000000
#define GREETING "hello from the vsock guest\n"
#define RESET_COMMAND "!reset"
#define RESET_COMMAND_BYTES 6

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
  u16 last_used;
};

/* struct virtio_vsock_hdr, little-endian, 44 bytes. */
struct hdr {
  u64 src_cid;
  u64 dst_cid;
  u32 src_port;
  u32 dst_port;
  u32 len;
  u16 type;
  u16 op;
  u32 flags;
  u32 buf_alloc;
  u32 fwd_cnt;
} __attribute__((packed));

struct conn {
  int used;
  u32 local;
  u32 peer;
  /* Bytes received (into the ring) and consumed (echoed or printed), mod 2^32. */
  u32 rx_cnt;
  u32 fwd_cnt;
  /* Bytes sent, and the host's last buf_alloc and fwd_cnt. */
  u32 tx_cnt;
  u32 peer_buf_alloc;
  u32 peer_fwd_cnt;
  int peer_shutdown;
  u8 ring[CONN_BUF];
  u32 head;
  u32 count;
};

static u32 base;
static u32 failures;
static u64 guest_cid;
static struct vq queues[3];
static u8 rx_bufs[QUEUE_SIZE][RX_BUF] __attribute__((aligned(16)));
static u8 ev_bufs[QUEUE_SIZE][EVENT_BYTES] __attribute__((aligned(16)));
static u8 tx_buf[sizeof(struct hdr) + TX_PAYLOAD] __attribute__((aligned(16)));
static struct conn conns[MAX_CONNS];
static int client_connected;

static u32 reg(u32 off) { return mmio_read32(base + off); }
static void set_reg(u32 off, u32 v) { mmio_write32(base + off, v); }

static void fail(const char *what) {
  puts("FAIL ");
  puts(what);
  putc('\n');
  failures++;
}

static void post(u32 q, u32 i, void *buf, u32 len) {
  struct vq *v = &queues[q];
  v->descs[i] = (struct desc){(u32)buf, len, DESC_F_WRITE, 0};
  v->avail.ring[v->avail.idx % QUEUE_SIZE] = (u16)i;
  barrier(); /* descriptor and ring entry before the index */
  v->avail.idx = (u16)(v->avail.idx + 1);
}

static int queue_setup(u32 index) {
  struct vq *q = &queues[index];
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

static int reset_requested;

static int setup(void) {
  memset(queues, 0, sizeof queues);
  if (reg(REG_MAGIC) != MAGIC || reg(REG_VERSION) != 2 || reg(REG_DEVICE_ID) != DEVICE_VSOCK) return 0;
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
  if (!(high & (1u << F_VERSION_1_HIGH_BIT)) || !(reg(REG_STATUS) & S_FEATURES_OK)) return 0;
  guest_cid = (u64)reg(REG_CONFIG) | (u64)reg(REG_CONFIG + 4) << 32;
  int ok = queue_setup(RXQ) && queue_setup(TXQ) && queue_setup(EVQ);
  for (u32 i = 0; i < QUEUE_SIZE; i++) post(RXQ, i, rx_bufs[i], RX_BUF);
  for (u32 i = 0; i < QUEUE_SIZE; i++) post(EVQ, i, ev_bufs[i], EVENT_BYTES);
  set_reg(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
  barrier();
  set_reg(REG_QUEUE_NOTIFY, RXQ);
  set_reg(REG_QUEUE_NOTIFY, EVQ);
  return ok && reg(REG_STATUS) == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

/* Sends one packet (header + `n` payload bytes) and waits (bounded) for its completion. */
static void send(u32 local, u32 peer, u16 op, u32 flags, u32 fwd_cnt, const u8 *payload, u32 n) {
  struct hdr *h = (struct hdr *)tx_buf;
  *h = (struct hdr){guest_cid, HOST_CID, local, peer, n, TYPE_STREAM, op, flags, CONN_BUF, fwd_cnt};
  if (n) memcpy(tx_buf + sizeof *h, payload, n);
  struct vq *q = &queues[TXQ];
  q->descs[0] = (struct desc){(u32)tx_buf, (u32)sizeof *h + n, 0, 0};
  q->avail.ring[q->avail.idx % QUEUE_SIZE] = 0;
  barrier();
  q->avail.idx = (u16)(q->avail.idx + 1);
  barrier();
  set_reg(REG_QUEUE_NOTIFY, TXQ);
  for (u32 i = 0; i < TX_POLL_LIMIT && q->used.idx == q->last_used; i++) {
  }
  if (q->used.idx == q->last_used) {
    fail("tx timeout");
    return;
  }
  q->last_used = (u16)(q->last_used + 1);
}

static int memcmp(const void *a, const void *b, u32 n) {
  const u8 *x = a, *y = b;
  for (u32 i = 0; i < n; i++)
    if (x[i] != y[i]) return x[i] - y[i];
  return 0;
}

static struct conn *find(u32 local, u32 peer) {
  for (int i = 0; i < MAX_CONNS; i++)
    if (conns[i].used && conns[i].local == local && conns[i].peer == peer) return &conns[i];
  return 0;
}

static struct conn *open_conn(u32 local, u32 peer, const struct hdr *h) {
  for (int i = 0; i < MAX_CONNS; i++) {
    if (conns[i].used) continue;
    struct conn *c = &conns[i];
    memset(c, 0, sizeof *c);
    c->used = 1;
    c->local = local;
    c->peer = peer;
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
    return c;
  }
  return 0;
}

static void close_conn(struct conn *c, int rst) {
  if (rst) send(c->local, c->peer, OP_RST, 0, c->fwd_cnt, 0, 0);
  puts("closed ");
  put_dec(c->peer);
  putc('\n');
  c->used = 0;
}

/* Echoes what the ring holds, as far as the host's credit allows. */
static void drain(struct conn *c) {
  while (c->count > 0) {
    u32 credit = c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt);
    if ((int)credit <= 0) return;
    u32 n = c->count;
    if (n > TX_PAYLOAD) n = TX_PAYLOAD;
    if (n > credit) n = credit;
    if (n > CONN_BUF - c->head) n = CONN_BUF - c->head; /* up to the ring's end */
    c->fwd_cnt += n; /* consumed once sent: the packet carries the new count */
    send(c->local, c->peer, OP_RW, 0, c->fwd_cnt, c->ring + c->head, n);
    c->tx_cnt += n;
    c->head = (c->head + n) % CONN_BUF;
    c->count -= n;
  }
  if (c->peer_shutdown) close_conn(c, 1);
}

static void handle(const struct hdr *h, const u8 *payload) {
  if (h->type != TYPE_STREAM || h->dst_cid != guest_cid) return;
  struct conn *c = find(h->dst_port, h->src_port);
  if (c) {
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
  }
  switch (h->op) {
  case OP_REQUEST:
    if (c || h->dst_port != LISTEN_PORT || !(c = open_conn(h->dst_port, h->src_port, h))) {
      send(h->dst_port, h->src_port, OP_RST, 0, 0, 0, 0);
      return;
    }
    send(c->local, c->peer, OP_RESPONSE, 0, 0, 0, 0);
    puts("accepted ");
    put_dec(c->peer);
    putc('\n');
    return;
  case OP_RESPONSE:
    if (!c || c->local != CLIENT_PORT) return;
    client_connected = 1;
    puts("connected\n");
    send(c->local, c->peer, OP_RW, 0, c->fwd_cnt, (const u8 *)GREETING, sizeof GREETING - 1);
    c->tx_cnt += sizeof GREETING - 1;
    return;
  case OP_RW:
    if (!c) return;
    if (c->local == CLIENT_PORT) {
      puts("host says: ");
      for (u32 i = 0; i < h->len; i++) putc((char)payload[i]);
      c->rx_cnt += h->len;
      c->fwd_cnt += h->len;
      send(c->local, c->peer, OP_CREDIT_UPDATE, 0, c->fwd_cnt, 0, 0);
      return;
    }
    if (h->len >= RESET_COMMAND_BYTES && memcmp(payload, RESET_COMMAND, RESET_COMMAND_BYTES) == 0) {
      reset_requested = 1;
      return;
    }
    if (h->len > CONN_BUF - c->count) {
      fail("credit exceeded");
      close_conn(c, 1);
      return;
    }
    for (u32 i = 0; i < h->len; i++) c->ring[(c->head + c->count + i) % CONN_BUF] = payload[i];
    c->count += h->len;
    c->rx_cnt += h->len;
    return;
  case OP_CREDIT_REQUEST:
    if (c) send(c->local, c->peer, OP_CREDIT_UPDATE, 0, c->fwd_cnt, 0, 0);
    return;
  case OP_SHUTDOWN:
    if (c) c->peer_shutdown = 1;
    return;
  case OP_RST:
    if (c) close_conn(c, 0);
    return;
  default:
    return;
  }
}

void guest_main(void) {
  puts("vsock test guest\n");
  base = acpi_find_virtio(DEVICE_VSOCK);
  if (base == 0 || !setup()) {
    fail("setup");
    power_off(failures);
  }
  puts("ready cid ");
  put_dec((u32)guest_cid);
  putc('\n');
  struct hdr request = {0};
  request.buf_alloc = CONN_BUF;
  struct conn *client = open_conn(CLIENT_PORT, HOST_PORT, &request);
  send(CLIENT_PORT, HOST_PORT, OP_REQUEST, 0, 0, 0, 0);
  (void)client;
  for (;;) {
    struct vq *rx = &queues[RXQ];
    int reposted = 0;
    while (rx->used.idx != rx->last_used) {
      barrier(); /* the index before the element */
      struct used_elem e = rx->used.ring[rx->last_used % QUEUE_SIZE];
      rx->last_used = (u16)(rx->last_used + 1);
      u32 i = e.id % QUEUE_SIZE;
      const struct hdr *h = (const struct hdr *)rx_bufs[i];
      if (e.len >= sizeof *h && h->len <= e.len - sizeof *h) handle(h, rx_bufs[i] + sizeof *h);
      else fail("short packet");
      post(RXQ, i, rx_bufs[i], RX_BUF);
      reposted = 1;
    }
    if (reset_requested) {
      reset_requested = 0;
      set_reg(REG_STATUS, 0);
      memset(conns, 0, sizeof conns);
      if (!setup()) fail("setup after reset");
      puts("reset done\n");
      continue;
    }
    if (reposted) {
      barrier();
      set_reg(REG_QUEUE_NOTIFY, RXQ);
    }
    struct vq *ev = &queues[EVQ];
    while (ev->used.idx != ev->last_used) {
      barrier();
      u32 i = ev->used.ring[ev->last_used % QUEUE_SIZE].id % QUEUE_SIZE;
      ev->last_used = (u16)(ev->last_used + 1);
      u32 id = ev_bufs[i][0] | (u32)ev_bufs[i][1] << 8 | (u32)ev_bufs[i][2] << 16 | (u32)ev_bufs[i][3] << 24;
      puts("event ");
      put_dec(id);
      putc('\n');
      for (int k = 0; k < MAX_CONNS; k++) conns[k].used = 0;
      post(EVQ, i, ev_bufs[i], EVENT_BYTES);
      set_reg(REG_QUEUE_NOTIFY, EVQ);
    }
    for (int k = 0; k < MAX_CONNS; k++)
      if (conns[k].used && conns[k].local == LISTEN_PORT) drain(&conns[k]);
  }
}
