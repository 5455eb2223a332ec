/*
 * The virtio-net benchmark guest (bench/virtio-net): runs unchanged under bunvmm and QEMU microvm. It
 * finds its virtio-net transport (netbench-net.h), then, each phase between two marker lines on COM1
 * that the harness timestamps as they reach the VMM's stdout:
 *
 *   tx64, tx1514  FRAMES frames of 64 and 1514 bytes (Ethernet, no FCS; 1514 = a 1500-byte IP packet)
 *                 sent as fast as the TX ring allows: every free descriptor posted, one notification
 *                 per batch (none while the device says NO_NOTIFY), completions taken by polling the
 *                 used ring. "BEGIN tx64" before the first post, "END tx64 <completed>" after the last
 *                 completion. The frames are UDP to TX_PORT on a unicast MAC nobody has, so the host's
 *                 stack drops them after its packet sockets (the harness's counter) have seen them.
 *   rx64, rx1514  "READY rx64" when every RX buffer is posted: the harness then has the host send
 *                 frames of that size (UDP to DATA_PORT, the phase number in the first payload word) as
 *                 fast as it offers them, then END_PORT frames. "BEGIN rx64" at the first data frame,
 *                 "END rx64 <received>" at the first END frame of this phase. Buffers are reposted in
 *                 batches: whenever the used ring is empty.
 *   vsock         with a virtio-vsock device (bunvmm only): "READY vsock" once the driver is up (the
 *                 harness then connects), netbench-vsock.c accepts the connection to VSOCK_PORT, "BEGIN
 *                 vsock" at the first payload, "END vsock <bytes>" once VSOCK_BYTES have arrived; the
 *                 payloads are counted in place.
 *
 * Every wait is bounded (turns of a polling loop without progress); a phase that runs out prints
 * "STALL <phase>". Then "DONE <failures>" and power-off (QEMU: isa-debug-exit; bunvmm: ACPI S5).
 */
#include "netbench-net.h"
#include "netbench-vsock.h"

#if !defined(FRAMES) || !defined(HOST_IP) || !defined(GUEST_IP) || !defined(TX_PORT) || !defined(DATA_PORT) || \
    !defined(END_PORT) || !defined(VSOCK_PORT) || !defined(VSOCK_BYTES)
#error "FRAMES, HOST_IP, GUEST_IP, TX_PORT, DATA_PORT, END_PORT, VSOCK_PORT and VSOCK_BYTES come from the build"
#endif

#define SMALL_FRAME 64
#define LARGE_FRAME 1514
/* Polling turns without progress before a phase gives up (~10 instructions a turn). */
#define IDLE_TURNS 50000000u
#define PHASE_RX64 1
#define PHASE_RX1514 2

static u8 small_frame[NET_HDR_BYTES + SMALL_FRAME] __attribute__((aligned(16)));
static u8 large_frame[NET_HDR_BYTES + LARGE_FRAME] __attribute__((aligned(16)));
/* A locally administered unicast address that is neither the TAP's nor the guest's. */
static const u8 NOBODY_MAC[MAC_BYTES] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static u32 failures;

static void marker(const char *what, const char *phase) {
  puts(what);
  putc(' ');
  puts(phase);
}

static void tx_phase(const char *name, u8 *buf, u32 frame_bytes) {
  memset(buf, 0, NET_HDR_BYTES + frame_bytes);
  udp_headers(buf + NET_HDR_BYTES, NOBODY_MAC, GUEST_IP, HOST_IP, TX_PORT, TX_PORT, frame_bytes - FRAME_HEADERS);
  const u32 addr[1] = {(u32)buf};
  const u32 len[1] = {NET_HDR_BYTES + frame_bytes};
  static const int readable[1] = {0};
  u32 posted = 0, done = 0, idle = 0;
  marker("BEGIN", name);
  putc('\n');
  while (done < FRAMES && idle < IDLE_TURNS) {
    u32 batch = 0;
    while (posted < FRAMES && vq_post(&net_tx, addr, len, readable, 1)) {
      posted++;
      batch++;
    }
    if (batch) vq_kick(&net_tx);
    struct vq_used_elem e;
    u32 before = done;
    while (vq_take(&net_tx, &e)) done++;
    idle = done == before && !batch ? idle + 1 : 0;
  }
  marker(done == FRAMES ? "END" : "STALL", name);
  putc(' ');
  put_dec(done);
  putc('\n');
  if (done != FRAMES) failures++;
}

static void rx_phase(const char *name, u32 phase) {
  u32 received = 0, idle = 0;
  int begun = 0, ended = 0;
  net_rx_fill();
  marker("READY", name);
  putc('\n');
  while (!ended && idle < IDLE_TURNS) {
    u32 len;
    u8 *f = net_rx_next(&len);
    if (!f) {
      if (net_rx.nfree) net_rx_fill();
      idle++;
      continue;
    }
    idle = 0;
    const u8 *ip = f + ETH_HLEN;
    const u8 *udp = ip + IPV4_HLEN;
    if (len < FRAME_HEADERS + 4 || get_be16(f + 12) != ETHERTYPE_IPV4 || ip[9] != IPPROTO_UDP ||
        get_be32(udp + UDP_HLEN) != phase)
      continue;
    u32 port = get_be16(udp + 2);
    if (port == DATA_PORT) {
      if (!begun) {
        marker("BEGIN", name);
        putc('\n');
        begun = 1;
      }
      received++;
    } else if (port == END_PORT) {
      ended = 1;
    }
  }
  marker(ended ? "END" : "STALL", name);
  putc(' ');
  put_dec(received);
  putc('\n');
  if (!ended) failures++;
}

void guest_main(void) {
  puts("netbench\n");
  u32 base = find_transport(VIRTIO_DEVICE_NET);
  if (!base) {
    puts("no virtio-net transport\n");
    bench_power_off(1);
  }
  if (!net_init(base)) {
    puts("virtio-net set-up failed\n");
    bench_power_off(1);
  }
  net_rx_fill();
  tx_phase("tx64", small_frame, SMALL_FRAME);
  tx_phase("tx1514", large_frame, LARGE_FRAME);
  rx_phase("rx64", PHASE_RX64);
  rx_phase("rx1514", PHASE_RX1514);
  u32 vsock = find_transport(VIRTIO_DEVICE_VSOCK);
  if (vsock) {
    if (!vsock_init(vsock)) {
      puts("virtio-vsock set-up failed\n");
      failures++;
    } else {
      puts("READY vsock\n");
      u32 got = 0;
      if (vsock_accept(VSOCK_PORT)) {
        u32 idle = 0;
        int begun = 0;
        while (got < VSOCK_BYTES && idle < IDLE_TURNS) {
          u32 n;
          vsock_recv(&n);
          if (!n) {
            idle++;
            continue;
          }
          if (!begun) {
            puts("BEGIN vsock\n");
            begun = 1;
          }
          idle = 0;
          got += n;
        }
      }
      marker(got >= VSOCK_BYTES ? "END" : "STALL", "vsock");
      putc(' ');
      put_dec(got);
      putc('\n');
      if (got < VSOCK_BYTES) failures++;
    }
  }
  bench_power_off(failures);
}
