/*
 * The polling virtio-vsock driver of the benchmark and stress guests. See netbench-vsock.h.
 */
#include "netbench-vsock.h"

#define CFG_GUEST_CID 0
#define RX_BUFFERS 64
#define EVENT_BUFFERS 4
#define EVENT_BYTES 4
#define ACCEPT_TURNS 50000000u

u64 vsock_guest_cid;
static struct vq rxq, txq, evq;
static u8 rx_bufs[RX_BUFFERS][VSOCK_HDR_BYTES + VSOCK_RX_PAYLOAD] __attribute__((aligned(16)));
static u8 ev_bufs[EVENT_BUFFERS][EVENT_BYTES];
/* The RX buffer handed out by the last vsock_recv, reposted at the next call; RX_BUFFERS: none. */
static u32 lent = RX_BUFFERS;
/* A TX packet's header and payload live at its head descriptor's index until the device is done. */
static u8 tx_hdrs[RING_SIZE][VSOCK_HDR_BYTES];
static u8 tx_data[RING_SIZE][VSOCK_TX_CHUNK];

static struct {
  int up;
  u32 local_port, peer_port;
  u32 fwd_cnt, reported_fwd_cnt; /* bytes we consumed; as last told to the host */
  u32 tx_cnt;                    /* bytes we sent */
  u32 peer_buf_alloc, peer_fwd_cnt;
  int credit_requested;
} conn;

static u32 le32(const u8 *p) { return p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24; }
static u32 le16(const u8 *p) { return p[0] | (u32)p[1] << 8; }
static void set_le32(u8 *p, u32 v) {
  for (int i = 0; i < 4; i++) p[i] = (u8)(v >> (8 * i));
}
static void set_le16(u8 *p, u32 v) {
  p[0] = (u8)v;
  p[1] = (u8)(v >> 8);
}

static void post_rx(u32 i) {
  static const int writable[1] = {1};
  u32 addr = (u32)rx_bufs[i];
  u32 len = sizeof rx_bufs[i];
  vq_post(&rxq, &addr, &len, writable, 1);
}

int vsock_init(u32 base) {
  if (!virtio_negotiate(base, 0)) return 0;
  vsock_guest_cid = (u64)mmio_read32(base + REG_CONFIG + CFG_GUEST_CID) |
                    (u64)mmio_read32(base + REG_CONFIG + CFG_GUEST_CID + 4) << 32;
  if (!vq_setup(&rxq, base, VSOCK_RX_QUEUE) || !vq_setup(&txq, base, VSOCK_TX_QUEUE) ||
      !vq_setup(&evq, base, VSOCK_EVENT_QUEUE))
    return 0;
  vq_driver_ok(base);
  /* a used element names a descriptor; the descriptor's address names the RX buffer (vsock_recv) */
  for (u32 i = 0; i < RX_BUFFERS; i++) post_rx(i);
  static const int writable[1] = {1};
  for (u32 i = 0; i < EVENT_BUFFERS; i++) {
    u32 addr = (u32)ev_bufs[i];
    u32 len = EVENT_BYTES;
    vq_post(&evq, &addr, &len, writable, 1);
  }
  vq_kick(&rxq);
  vq_kick(&evq);
  memset(&conn, 0, sizeof conn);
  lent = RX_BUFFERS;
  return 1;
}

int vsock_post_raw(const u8 *hdr, const u8 *payload, u32 n) {
  struct vq_used_elem e;
  while (vq_take(&txq, &e)) {
  }
  u32 parts = n ? 2 : 1;
  if (txq.nfree < parts || n > VSOCK_TX_CHUNK) return 0;
  u16 head = txq.free[txq.nfree - parts];
  memcpy(tx_hdrs[head], hdr, VSOCK_HDR_BYTES);
  if (n) memcpy(tx_data[head], payload, n);
  const u32 addr[2] = {(u32)tx_hdrs[head], (u32)tx_data[head]};
  const u32 len[2] = {VSOCK_HDR_BYTES, n};
  static const int readable[2] = {0, 0};
  vq_post(&txq, addr, len, readable, parts);
  vq_kick(&txq);
  return 1;
}

/* A packet of the connection with our credit in it. */
static int send_op(u32 op, const u8 *payload, u32 n) {
  u8 h[VSOCK_HDR_BYTES];
  memset(h, 0, sizeof h);
  set_le32(h + VSOCK_HDR_SRC_CID, (u32)vsock_guest_cid);
  set_le32(h + VSOCK_HDR_SRC_CID + 4, (u32)(vsock_guest_cid >> 32));
  set_le32(h + VSOCK_HDR_DST_CID, VSOCK_HOST_CID);
  set_le32(h + VSOCK_HDR_SRC_PORT, conn.local_port);
  set_le32(h + VSOCK_HDR_DST_PORT, conn.peer_port);
  set_le32(h + VSOCK_HDR_LEN, n);
  set_le16(h + VSOCK_HDR_TYPE, VSOCK_TYPE_STREAM);
  set_le16(h + VSOCK_HDR_OP, op);
  set_le32(h + VSOCK_HDR_BUF_ALLOC, VSOCK_BUF_ALLOC);
  set_le32(h + VSOCK_HDR_FWD_CNT, conn.fwd_cnt);
  if (!vsock_post_raw(h, payload, n)) return 0;
  conn.reported_fwd_cnt = conn.fwd_cnt;
  return 1;
}

/* Handles one received packet; returns its RW payload length for the connection (0 for anything else). */
static u32 handle(const u8 *p, u32 total) {
  if (total < VSOCK_HDR_BYTES) return 0;
  u32 op = le16(p + VSOCK_HDR_OP);
  u32 src_port = le32(p + VSOCK_HDR_SRC_PORT);
  u32 dst_port = le32(p + VSOCK_HDR_DST_PORT);
  u32 len = le32(p + VSOCK_HDR_LEN);
  if (len > total - VSOCK_HDR_BYTES) len = total - VSOCK_HDR_BYTES;
  int ours = conn.up && src_port == conn.peer_port && dst_port == conn.local_port;
  if (op == VSOCK_OP_REQUEST && !conn.up && dst_port == conn.local_port && conn.local_port) {
    conn.up = 1;
    conn.peer_port = src_port;
    conn.peer_buf_alloc = le32(p + VSOCK_HDR_BUF_ALLOC);
    conn.peer_fwd_cnt = le32(p + VSOCK_HDR_FWD_CNT);
    send_op(VSOCK_OP_RESPONSE, 0, 0);
    return 0;
  }
  if (!ours) return 0;
  conn.peer_buf_alloc = le32(p + VSOCK_HDR_BUF_ALLOC);
  conn.peer_fwd_cnt = le32(p + VSOCK_HDR_FWD_CNT);
  conn.credit_requested = 0;
  if (op == VSOCK_OP_RW) {
    conn.fwd_cnt += len;
    if (conn.fwd_cnt - conn.reported_fwd_cnt >= VSOCK_BUF_ALLOC / 2) send_op(VSOCK_OP_CREDIT_UPDATE, 0, 0);
    return len;
  }
  if (op == VSOCK_OP_CREDIT_REQUEST) send_op(VSOCK_OP_CREDIT_UPDATE, 0, 0);
  if (op == VSOCK_OP_RST || op == VSOCK_OP_SHUTDOWN) conn.up = 0;
  return 0;
}

const u8 *vsock_recv(u32 *n) {
  *n = 0;
  if (lent < RX_BUFFERS) {
    post_rx(lent);
    vq_kick(&rxq);
    lent = RX_BUFFERS;
  }
  struct vq_used_elem e;
  while (vq_take(&evq, &e)) { /* a transport reset: the connection is gone */
    conn.up = 0;
    static const int writable[1] = {1};
    u32 addr = (u32)ev_bufs[0];
    u32 len = EVENT_BYTES;
    vq_post(&evq, &addr, &len, writable, 1);
    vq_kick(&evq);
  }
  if (!vq_take(&rxq, &e)) return 0;
  u32 buf = (u32)rxq.desc[e.id % RING_SIZE].addr;
  u32 i = (buf - (u32)rx_bufs[0]) / sizeof rx_bufs[0];
  if (i >= RX_BUFFERS) i = 0; /* not ours: never happens with an honest device */
  u32 total = e.len > sizeof rx_bufs[i] ? sizeof rx_bufs[i] : e.len;
  *n = handle(rx_bufs[i], total);
  lent = i;
  return rx_bufs[i] + VSOCK_HDR_BYTES;
}

int vsock_accept(u32 port) {
  conn.local_port = port;
  u32 n;
  for (u32 turn = 0; turn < ACCEPT_TURNS && !conn.up; turn++) vsock_recv(&n);
  return conn.up;
}

u32 vsock_send(const u8 *data, u32 n) {
  if (!conn.up) return 0;
  u32 credit = conn.peer_buf_alloc - (conn.tx_cnt - conn.peer_fwd_cnt);
  if (credit > conn.peer_buf_alloc) credit = 0; /* the host claims more forwarded than we sent */
  if (n > credit) n = credit;
  if (n > VSOCK_TX_CHUNK) n = VSOCK_TX_CHUNK;
  if (!n) {
    if (!conn.credit_requested && send_op(VSOCK_OP_CREDIT_REQUEST, 0, 0)) conn.credit_requested = 1;
    return 0;
  }
  if (!send_op(VSOCK_OP_RW, data, n)) return 0;
  conn.tx_cnt += n;
  return n;
}

int vsock_connected(void) { return conn.up; }

u32 vsock_unacked(void) { return conn.tx_cnt - conn.peer_fwd_cnt; }

void vsock_request_credit(void) {
  if (conn.up) send_op(VSOCK_OP_CREDIT_REQUEST, 0, 0);
}
