/**
 * Virtio 1.2 byte layouts and constants bunvmm's virtio devices use, declared once as named offsets:
 * the virtio-mmio register file (version 2, the "modern" layout), device status and feature bits,
 * device IDs, the split virtqueue structures, and the block and console device structures.
 *
 * All virtio 1.x fields are little-endian. test/devices/virtio/layouts.test.ts compiles a C program
 * against <linux/virtio_mmio.h>, <linux/virtio_ring.h>, <linux/virtio_blk.h>, <linux/virtio_config.h>,
 * <linux/virtio_console.h> and <linux/virtio_ids.h> and compares every offset, size and constant here
 * with what the headers say (VIRTIO_CHECKED_CONSTANTS and VIRTIO_LAYOUTS).
 *
 * Threads: plain constants, usable from any thread.
 */
import { type CLayout, cLayout } from "./layout.ts";

// ---------------------------------------------------------------------------------------------------
// virtio-mmio registers (offsets from the transport's base; all 32 bits wide below the config space)

/** "virt" read as a little-endian u32. */
export const VIRTIO_MMIO_MAGIC = 0x7472_6976;
/** The only transport version bunvmm offers: 2, the virtio 1.x register layout (no legacy PFN). */
export const VIRTIO_MMIO_VERSION_MODERN = 2;
/** Our vendor ID: "BVMM" little-endian; any value is allowed, the driver only reports it. */
export const VIRTIO_MMIO_BUNVMM_VENDOR = 0x4d4d_5642;

export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4;
/** Shared memory regions: select one, read its length and base (all ones: no such region). */
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
/** Device-specific configuration space starts here. */
export const VIRTIO_MMIO_CONFIG = 0x100;
/** Bytes of MMIO one transport decodes (registers + a page of config space is plenty). */
export const VIRTIO_MMIO_SIZE = 0x200;

/** InterruptStatus bits: a used buffer was added / the configuration changed. */
export const VIRTIO_MMIO_INT_VRING = 1 << 0;
export const VIRTIO_MMIO_INT_CONFIG = 1 << 1;

// ---------------------------------------------------------------------------------------------------
// Device status (the Status register)

export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// ---------------------------------------------------------------------------------------------------
// Feature bit numbers (bit N of the 64-bit feature set; DeviceFeaturesSel 0 shows bits 0..31, 1 shows 32..63)

export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;

export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2;

// ---------------------------------------------------------------------------------------------------
// Device IDs

export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;

// ---------------------------------------------------------------------------------------------------
// Split virtqueue

/** Descriptor flags. */
export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;
/** used.flags: the device asks not to be notified (without EVENT_IDX). */
export const VRING_USED_F_NO_NOTIFY = 1;
/** avail.flags: the driver asks for no interrupt (without EVENT_IDX). */
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
/** Required alignments of the three ring parts. */
export const VRING_DESC_ALIGN_SIZE = 16;
export const VRING_AVAIL_ALIGN_SIZE = 2;
export const VRING_USED_ALIGN_SIZE = 4;

/** One descriptor: a guest buffer, its length, flags, and the next descriptor's index. */
export const VRING_DESC_LAYOUT = cLayout("struct vring_desc", 16, {
  addr: [0, 8],
  len: [8, 4],
  flags: [12, 2],
  next: [14, 2],
});

/**
 * The driver's ring: flags, idx, then ring[size] of u16 heads, then used_event (u16, with EVENT_IDX).
 * `ring` is a flexible array (size 0 here: only its offset is checked).
 */
export const VRING_AVAIL_LAYOUT = cLayout("struct vring_avail", 4, {
  flags: [0, 2],
  idx: [2, 2],
});
/** Offset of avail.ring[0]; each entry is 2 bytes. */
export const VRING_AVAIL_RING = 4;
export const VRING_AVAIL_ENTRY_SIZE = 2;

/** One used element: head index (u32) and bytes written into the chain. */
export const VRING_USED_ELEM_LAYOUT = cLayout("struct vring_used_elem", 8, {
  id: [0, 4],
  len: [4, 4],
});
/** The device's ring: flags, idx, then ring[size] of used elements, then avail_event (u16). */
export const VRING_USED_LAYOUT = cLayout("struct vring_used", 4, {
  flags: [0, 2],
  idx: [2, 2],
});
export const VRING_USED_RING = 4;

/** Bytes of each ring part for a queue of `size` entries (with the event-index trailer). */
export function vringDescBytes(size: number): number {
  return VRING_DESC_LAYOUT.size * size;
}
export function vringAvailBytes(size: number): number {
  return VRING_AVAIL_RING + VRING_AVAIL_ENTRY_SIZE * size + VRING_AVAIL_ENTRY_SIZE;
}
export function vringUsedBytes(size: number): number {
  return VRING_USED_RING + VRING_USED_ELEM_LAYOUT.size * size + VRING_AVAIL_ENTRY_SIZE;
}

// ---------------------------------------------------------------------------------------------------
// Block device

/** Sector size of every virtio-blk address, whatever the disk's block size. */
export const VIRTIO_BLK_SECTOR_SIZE = 512;
/** GET_ID answers with this many bytes (the serial, NUL-padded, not necessarily NUL-terminated). */
export const VIRTIO_BLK_ID_BYTES = 20;

export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;

export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
/** Size of the status byte the device writes last. */
export const VIRTIO_BLK_STATUS_SIZE = 1;

/** Segment flag of WRITE_ZEROES: the device may deallocate the range. */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** The block device's configuration space (packed, at VIRTIO_MMIO_CONFIG). */
export const VIRTIO_BLK_CONFIG_LAYOUT = cLayout("struct virtio_blk_config", 72, {
  capacity: [0, 8],
  size_max: [8, 4],
  seg_max: [12, 4],
  "geometry.cylinders": [16, 2],
  "geometry.heads": [18, 1],
  "geometry.sectors": [19, 1],
  blk_size: [20, 4],
  physical_block_exp: [24, 1],
  alignment_offset: [25, 1],
  min_io_size: [26, 2],
  opt_io_size: [28, 4],
  wce: [32, 1],
  unused: [33, 1],
  num_queues: [34, 2],
  max_discard_sectors: [36, 4],
  max_discard_seg: [40, 4],
  discard_sector_alignment: [44, 4],
  max_write_zeroes_sectors: [48, 4],
  max_write_zeroes_seg: [52, 4],
  write_zeroes_may_unmap: [56, 1],
  unused1: [57, 3],
  max_secure_erase_sectors: [60, 4],
  max_secure_erase_seg: [64, 4],
  secure_erase_sector_alignment: [68, 4],
});

/** The request header: the first, device-readable part of every block request. */
export const VIRTIO_BLK_OUTHDR_LAYOUT = cLayout("struct virtio_blk_outhdr", 16, {
  type: [0, 4],
  ioprio: [4, 4],
  sector: [8, 8],
});

/** One range of a DISCARD or WRITE_ZEROES request. */
export const VIRTIO_BLK_DISCARD_WRITE_ZEROES_LAYOUT = cLayout("struct virtio_blk_discard_write_zeroes", 16, {
  sector: [0, 8],
  num_sectors: [8, 4],
  flags: [12, 4],
});

// ---------------------------------------------------------------------------------------------------
// Console device

export const VIRTIO_CONSOLE_CONFIG_LAYOUT = cLayout("struct virtio_console_config", 12, {
  cols: [0, 2],
  rows: [2, 2],
  max_nr_ports: [4, 4],
  emerg_wr: [8, 4],
});

/** Every layout above, for the header test. */
export const VIRTIO_LAYOUTS: readonly CLayout[] = [
  VRING_DESC_LAYOUT,
  VRING_AVAIL_LAYOUT,
  VRING_USED_ELEM_LAYOUT,
  VRING_USED_LAYOUT,
  VIRTIO_BLK_CONFIG_LAYOUT,
  VIRTIO_BLK_OUTHDR_LAYOUT,
  VIRTIO_BLK_DISCARD_WRITE_ZEROES_LAYOUT,
  VIRTIO_CONSOLE_CONFIG_LAYOUT,
];

/** Every constant above that the headers also define, by the header's name. */
export const VIRTIO_CHECKED_CONSTANTS: Readonly<Record<string, number>> = {
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_VERSION,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
  VIRTIO_MMIO_QUEUE_USED_LOW,
  VIRTIO_MMIO_QUEUE_USED_HIGH,
  VIRTIO_MMIO_SHM_SEL,
  VIRTIO_MMIO_SHM_LEN_LOW,
  VIRTIO_MMIO_SHM_LEN_HIGH,
  VIRTIO_MMIO_SHM_BASE_LOW,
  VIRTIO_MMIO_SHM_BASE_HIGH,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_F_VERSION_1,
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_RING_PACKED,
  VIRTIO_F_IN_ORDER,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_GEOMETRY,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_CONSOLE_F_SIZE,
  VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_F_EMERG_WRITE,
  VIRTIO_ID_NET,
  VIRTIO_ID_BLOCK,
  VIRTIO_ID_CONSOLE,
  VIRTIO_ID_RNG,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_F_INDIRECT,
  VRING_USED_F_NO_NOTIFY,
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_ALIGN_SIZE,
  VRING_AVAIL_ALIGN_SIZE,
  VRING_USED_ALIGN_SIZE,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};

/** Offsets of the flexible arrays (ring[]), checked separately: their sizeof is meaningless. */
export const VIRTIO_FLEXIBLE_ARRAYS: Readonly<
  Record<string, [cType: string, member: string, offset: number]>
> = {
  avail_ring: ["struct vring_avail", "ring", VRING_AVAIL_RING],
  used_ring: ["struct vring_used", "ring", VRING_USED_RING],
};

// ---------------------------------------------------------------------------------------------------
// Network device (<linux/virtio_net.h>); checked by test/devices/virtio/net-layouts.test.ts

export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_GUEST_ECN = 9;
export const VIRTIO_NET_F_GUEST_UFO = 10;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_HOST_ECN = 13;
export const VIRTIO_NET_F_HOST_UFO = 14;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_MQ = 22;
/** config.status: the link is up. */
export const VIRTIO_NET_S_LINK_UP = 1;
/** virtio_net_hdr flags and gso_type values. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

/** The device's config space (the fields up to supported_hash_types; packed). */
export const VIRTIO_NET_CONFIG_LAYOUT = cLayout("struct virtio_net_config", 24, {
  mac: [0, 6],
  status: [6, 2],
  max_virtqueue_pairs: [8, 2],
  mtu: [10, 2],
  speed: [12, 4],
  duplex: [16, 1],
  rss_max_key_size: [17, 1],
  rss_max_indirection_table_length: [18, 2],
  supported_hash_types: [20, 4],
});

/**
 * The header in front of every frame, both ways, with VERSION_1 (the merged-buffers layout whatever was
 * negotiated: num_buffers is present and is 1 without MRG_RXBUF).
 */
export const VIRTIO_NET_HDR_V1_LAYOUT = cLayout("struct virtio_net_hdr_v1", 12, {
  flags: [0, 1],
  gso_type: [1, 1],
  hdr_len: [2, 2],
  gso_size: [4, 2],
  csum_start: [6, 2],
  csum_offset: [8, 2],
  num_buffers: [10, 2],
});

// ---------------------------------------------------------------------------------------------------
// Socket device (<linux/virtio_vsock.h>); checked by test/devices/virtio/vsock-layouts.test.ts

export const VIRTIO_ID_VSOCK = 19;
export const VIRTIO_VSOCK_F_SEQPACKET = 1;
export const VIRTIO_VSOCK_TYPE_STREAM = 1;
export const VIRTIO_VSOCK_TYPE_SEQPACKET = 2;
export const VIRTIO_VSOCK_OP_INVALID = 0;
export const VIRTIO_VSOCK_OP_REQUEST = 1;
export const VIRTIO_VSOCK_OP_RESPONSE = 2;
export const VIRTIO_VSOCK_OP_RST = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN = 4;
export const VIRTIO_VSOCK_OP_RW = 5;
export const VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
export const VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;
/** OP_SHUTDOWN flags: the sender will receive / send no more. */
export const VIRTIO_VSOCK_SHUTDOWN_RCV = 1;
export const VIRTIO_VSOCK_SHUTDOWN_SEND = 2;
export const VIRTIO_VSOCK_EVENT_TRANSPORT_RESET = 0;

export const VIRTIO_VSOCK_CONFIG_LAYOUT = cLayout("struct virtio_vsock_config", 8, {
  guest_cid: [0, 8],
});

export const VIRTIO_VSOCK_EVENT_LAYOUT = cLayout("struct virtio_vsock_event", 4, {
  id: [0, 4],
});

/** The header of every vsock packet (packed, 44 bytes), followed by `len` payload bytes for OP_RW. */
export const VIRTIO_VSOCK_HDR_LAYOUT = cLayout("struct virtio_vsock_hdr", 44, {
  src_cid: [0, 8],
  dst_cid: [8, 8],
  src_port: [16, 4],
  dst_port: [20, 4],
  len: [24, 4],
  type: [28, 2],
  op: [30, 2],
  flags: [32, 4],
  buf_alloc: [36, 4],
  fwd_cnt: [40, 4],
});

export const VIRTIO_NET_LAYOUTS: readonly CLayout[] = [VIRTIO_NET_CONFIG_LAYOUT, VIRTIO_NET_HDR_V1_LAYOUT];

export const VIRTIO_NET_CHECKED_CONSTANTS: Readonly<Record<string, number>> = {
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_GUEST_ECN,
  VIRTIO_NET_F_GUEST_UFO,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_HOST_ECN,
  VIRTIO_NET_F_HOST_UFO,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_S_LINK_UP,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_UDP,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_GSO_ECN,
};

export const VIRTIO_VSOCK_LAYOUTS: readonly CLayout[] = [
  VIRTIO_VSOCK_CONFIG_LAYOUT,
  VIRTIO_VSOCK_EVENT_LAYOUT,
  VIRTIO_VSOCK_HDR_LAYOUT,
];

export const VIRTIO_VSOCK_CHECKED_CONSTANTS: Readonly<Record<string, number>> = {
  VIRTIO_ID_VSOCK,
  VIRTIO_VSOCK_F_SEQPACKET,
  VIRTIO_VSOCK_TYPE_STREAM,
  VIRTIO_VSOCK_TYPE_SEQPACKET,
  VIRTIO_VSOCK_OP_INVALID,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VIRTIO_VSOCK_EVENT_TRANSPORT_RESET,
};
