/*
 * A polling virtio-vsock driver for the benchmark and stress guests: one stream connection at a time,
 * accepted on a port the host connects to (bunvmm's hybrid vsock: the host's `CONNECT <port>` becomes
 * OP_REQUEST here). Written from the virtio 1.2 spec, section 5.10. No interrupts: every call polls the
 * rings. Flow control: we advertise VSOCK_BUF_ALLOC and consume at once, so fwd_cnt follows the bytes
 * handed to the caller; a CREDIT_UPDATE goes out when half of it has been consumed since the last one
 * and in answer to CREDIT_REQUEST. vsock_send respects the host's credit (buf_alloc - (sent - fwd_cnt)).
 */
#ifndef BUNVMM_NETBENCH_VSOCK_H
#define BUNVMM_NETBENCH_VSOCK_H

#include "netbench-net.h"

/* struct virtio_vsock_hdr (packed, little-endian): byte offsets. */
#define VSOCK_HDR_SRC_CID 0
#define VSOCK_HDR_DST_CID 8
#define VSOCK_HDR_SRC_PORT 16
#define VSOCK_HDR_DST_PORT 20
#define VSOCK_HDR_LEN 24
#define VSOCK_HDR_TYPE 28
#define VSOCK_HDR_OP 30
#define VSOCK_HDR_FLAGS 32
#define VSOCK_HDR_BUF_ALLOC 36
#define VSOCK_HDR_FWD_CNT 40
#define VSOCK_HDR_BYTES 44

#define VSOCK_TYPE_STREAM 1
#define VSOCK_OP_REQUEST 1
#define VSOCK_OP_RESPONSE 2
#define VSOCK_OP_RST 3
#define VSOCK_OP_SHUTDOWN 4
#define VSOCK_OP_RW 5
#define VSOCK_OP_CREDIT_UPDATE 6
#define VSOCK_OP_CREDIT_REQUEST 7
#define VSOCK_HOST_CID 2
#define VSOCK_RX_QUEUE 0
#define VSOCK_TX_QUEUE 1
#define VSOCK_EVENT_QUEUE 2

/* Payload room of one RX buffer. */
#define VSOCK_RX_PAYLOAD 4096
/* Largest payload of one packet vsock_send posts. */
#define VSOCK_TX_CHUNK 1024
/* What we advertise as our receive buffer. */
#define VSOCK_BUF_ALLOC (256 * 1024)

extern u64 vsock_guest_cid;
/* Resets and sets up the device (RX buffers and event buffers posted); 1 on success. */
int vsock_init(u32 base);
/* Waits (bounded) for the host to connect to `port` and answers it; 1 when connected. */
int vsock_accept(u32 port);
/* Polls once: the payload of one RW packet of the connection, in place (no copy: the guest's code runs
 * emulated, a byte loop over every payload would be the bottleneck), valid until the next call, and its
 * length in *n; 0 when none arrived (*n is 0). Other packets are handled on the way. */
const u8 *vsock_recv(u32 *n);
/* Posts up to VSOCK_TX_CHUNK bytes if the host's credit and the ring allow; the bytes posted (maybe 0). */
u32 vsock_send(const u8 *data, u32 n);
/* Bytes sent that the host has not yet written to its socket (its fwd_cnt behind our count). */
u32 vsock_unacked(void);
/* Asks the host for its credit (a CREDIT_UPDATE with its fwd_cnt comes back). */
void vsock_request_credit(void);
/* 1 while the connection is up (no RST or SHUTDOWN from the host). */
int vsock_connected(void);
/* Posts one raw packet: `hdr` (VSOCK_HDR_BYTES) and `n` payload bytes copied; 1 when posted. For the
 * hostile guest. */
int vsock_post_raw(const u8 *hdr, const u8 *payload, u32 n);

#endif
