/*
 * The guest of the network pause-storm tests (test/stress/virtio-net-storm, vsock-storm): runs the
 * exchange of whichever device it finds (the tests configure one), while the test pauses and resumes
 * the VM at random, and reports what arrived so the test can check that nothing was lost or
 * duplicated.
 *
 *   virtio-net  "READY net", then at once: G2H_COUNT UDP datagrams GUEST_IP:NET_PORT -> HOST_IP:NET_PORT
 *               (Ethernet broadcast; payload: the 32-bit sequence number, big-endian), each in its own
 *               TX buffer; and the host's datagrams to NET_PORT counted by sequence number (a bitmap:
 *               a second copy is a duplicate) until the host's END datagram (sequence 0xffffffff) has
 *               arrived and every datagram of ours has completed. Then "net sent S received R dup D
 *               bogus B".
 *   vsock       "READY vsock", accepts the host's connection to VSOCK_PORT, then both ways at once:
 *               VSOCK_BYTES bytes of the pattern byte(i) = i mod 251 sent, and VSOCK_BYTES received,
 *               each checked against the pattern (a lost or repeated byte shifts every later one).
 *               Then, once the host has written all of ours to its socket (its fwd_cnt), "vsock sent S
               received R bad B unacked U".
 *
 * Every wait is bounded (turns without progress); "DONE <failures>" and power-off at the end.
 */
#include "netbench-net.h"
#include "netbench-vsock.h"

#if !defined(HOST_IP) || !defined(GUEST_IP) || !defined(NET_PORT) || !defined(G2H_COUNT) || !defined(H2G_COUNT) || \
    !defined(VSOCK_PORT) || !defined(VSOCK_BYTES)
#error "HOST_IP, GUEST_IP, NET_PORT, G2H_COUNT, H2G_COUNT, VSOCK_PORT and VSOCK_BYTES come from the build"
#endif

#define END_SEQUENCE 0xffffffffu
#define SEQ_BYTES 4
#define PATTERN_PERIOD 251
/* Turns of a polling loop without progress before giving up (~10 instructions a turn; a paused VM
 * does not turn at all). */
#define IDLE_TURNS 50000000u
/* Turns between two credit requests while waiting for the host to take our last bytes. */
#define CREDIT_ASK_EVERY 100000u
#define DATAGRAM_FRAME (NET_HDR_BYTES + FRAME_HEADERS + SEQ_BYTES)

static const u8 BROADCAST[MAC_BYTES] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static u8 tx_frames[RING_SIZE][DATAGRAM_FRAME];
static u8 seen[(H2G_COUNT + 7) / 8];
static u32 failures;
/* A variable, not the macro: the net test builds with VSOCK_BYTES 0, which would make the loop's
 * comparisons constant. */
static volatile u32 vsock_bytes = VSOCK_BYTES;

static void report(const char *name, u32 v) {
  putc(' ');
  puts(name);
  putc(' ');
  put_dec(v);
}

static void net_storm(u32 base) {
  if (!net_init(base)) {
    puts("virtio-net set-up failed\n");
    failures++;
    return;
  }
  net_rx_fill();
  puts("READY net\n");
  static const int readable[1] = {0};
  u32 sent = 0, completed = 0, received = 0, dup = 0, bogus = 0, idle = 0;
  int ended = 0;
  while ((completed < G2H_COUNT || !ended) && idle < IDLE_TURNS) {
    int progress = 0;
    if (sent < G2H_COUNT && net_tx.nfree) {
      u16 d = net_tx.free[net_tx.nfree - 1]; /* the descriptor vq_post takes: its buffer */
      u8 *b = tx_frames[d];
      memset(b, 0, NET_HDR_BYTES);
      udp_headers(b + NET_HDR_BYTES, BROADCAST, GUEST_IP, HOST_IP, NET_PORT, NET_PORT, SEQ_BYTES);
      put_be32(b + NET_HDR_BYTES + FRAME_HEADERS, sent);
      const u32 addr[1] = {(u32)b};
      const u32 len[1] = {DATAGRAM_FRAME};
      vq_post(&net_tx, addr, len, readable, 1);
      vq_kick(&net_tx);
      sent++;
      progress = 1;
    }
    struct vq_used_elem e;
    while (vq_take(&net_tx, &e)) {
      completed++;
      progress = 1;
    }
    u32 n;
    u8 *f;
    while ((f = net_rx_next(&n))) {
      progress = 1;
      const u8 *ip = f + ETH_HLEN;
      const u8 *udp = ip + IPV4_HLEN;
      if (n < FRAME_HEADERS + SEQ_BYTES || get_be16(f + 12) != ETHERTYPE_IPV4 || ip[9] != IPPROTO_UDP ||
          get_be16(udp + 2) != NET_PORT)
        continue; /* not the host's datagram (an ARP request, say) */
      u32 seq = get_be32(udp + UDP_HLEN);
      if (seq == END_SEQUENCE) {
        ended = 1;
      } else if (seq >= H2G_COUNT) {
        bogus++;
      } else if (seen[seq / 8] & (1u << (seq % 8))) {
        dup++;
      } else {
        seen[seq / 8] |= (u8)(1u << (seq % 8));
        received++;
      }
    }
    if (net_rx.nfree) net_rx_fill();
    idle = progress ? 0 : idle + 1;
  }
  puts("net");
  report("sent", completed);
  report("received", received);
  report("dup", dup);
  report("bogus", bogus);
  putc('\n');
  if (completed != G2H_COUNT || !ended || dup || bogus) failures++;
}

static void vsock_storm(u32 base) {
  if (!vsock_init(base)) {
    puts("virtio-vsock set-up failed\n");
    failures++;
    return;
  }
  puts("READY vsock\n");
  if (!vsock_accept(VSOCK_PORT)) {
    puts("vsock: no connection\n");
    failures++;
    return;
  }
  const u32 total = vsock_bytes;
  static u8 out[VSOCK_TX_CHUNK];
  u32 sent = 0, received = 0, bad = 0, idle = 0;
  while ((sent < total || received < total) && vsock_connected() && idle < IDLE_TURNS) {
    int progress = 0;
    if (sent < total) {
      u32 n = total - sent < VSOCK_TX_CHUNK ? total - sent : VSOCK_TX_CHUNK;
      for (u32 i = 0; i < n; i++) out[i] = (u8)((sent + i) % PATTERN_PERIOD);
      u32 posted = vsock_send(out, n);
      sent += posted;
      progress = posted != 0;
    }
    u32 got;
    const u8 *in = vsock_recv(&got);
    for (u32 i = 0; i < got; i++)
      if (in[i] != (u8)((received + i) % PATTERN_PERIOD)) bad++;
    received += got;
    if (got) progress = 1;
    idle = progress ? 0 : idle + 1;
  }
  /* Our last bytes may still sit in the device's buffer: wait until the host says it has written them
   * to its socket (its fwd_cnt), asking for it now and then, so the power-off cannot cut them off. */
  for (idle = 0; vsock_unacked() && vsock_connected() && idle < IDLE_TURNS; idle++) {
    if (idle % CREDIT_ASK_EVERY == 0) vsock_request_credit();
    u32 ignored;
    vsock_recv(&ignored);
  }
  puts("vsock");
  report("sent", sent);
  report("received", received);
  report("bad", bad);
  report("unacked", vsock_unacked());
  putc('\n');
  if (sent != total || received != total || bad || vsock_unacked()) failures++;
}

void guest_main(void) {
  puts("netbench-storm\n");
  u32 net = find_transport(VIRTIO_DEVICE_NET);
  u32 vsock = find_transport(VIRTIO_DEVICE_VSOCK);
  if (!net && !vsock) {
    puts("no virtio-net or virtio-vsock transport\n");
    bench_power_off(1);
  }
  if (net) net_storm(net);
  if (vsock) vsock_storm(vsock);
  bench_power_off(failures);
}
