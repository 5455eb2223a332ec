/**
 * virtio-net back-end on a TAP device: one receive queue (0) and one transmit queue (1), no control
 * queue, no multiqueue. Frames cross between the rings and the TAP with their 12-byte virtio_net_hdr
 * unchanged (the TAP is opened with IFF_VNET_HDR and that header size), so checksum and segmentation
 * offloads pass straight through.
 *
 * Features offered: MAC, STATUS (link always up), MTU, MRG_RXBUF, CSUM and GUEST_CSUM, HOST_TSO4/6 and
 * GUEST_TSO4/6, plus RING_EVENT_IDX and RING_INDIRECT_DESC (VERSION_1 is the transport's). What the TAP
 * may send us follows what the driver accepted (TUNSETOFFLOAD, set once per driver initialisation): a
 * driver without GUEST_CSUM gets finished checksums, one without GUEST_TSO4 no TCP segments above the MTU.
 *
 * Receive (TAP -> guest). A frame is read from the TAP only when there may be room for it: at most one
 * frame is ever held back (read, but no buffers were posted), and while one is held the TAP fd is not
 * polled, so further frames wait in the TAP's own queue (bounded by the kernel, which counts its drops).
 * The driver posting buffers is the receive queue's notification: `processQueue` on queue 0 delivers.
 * With MRG_RXBUF a frame spans as many chains as it needs and num_buffers says how many; chains popped
 * but not yet enough for a frame are kept for it (never returned with nothing in them). Without it one
 * chain must hold the whole frame and num_buffers is 1. A frame that cannot fit is dropped and counted:
 * without MRG_RXBUF, a chain smaller than it (that chain completes empty, so it cannot block the ring);
 * with it, every chain of the ring held and still too little room.
 *
 * Transmit (guest -> TAP). Each chain's readable bytes, header then frame, are written to the TAP as one
 * frame with writev, straight from guest RAM; the chain completes with used length 0. Dropped and counted,
 * chain completed, nothing thrown: a refused chain or one with writable buffers; fewer bytes than the header;
 * more than the header + 65550 bytes; a frame that is not GSO and longer than MTU + Ethernet header + one
 * VLAN tag; a GSO type or NEEDS_CSUM the driver did not negotiate; a frame the TAP refuses (it checks the
 * header).
 *
 * Before the driver is up, one frame is held the same way (so the TAP does not keep the worker awake);
 * when the driver (re)initialises, a frame held from before is dropped and counted, since it was read
 * under the previous offload settings.
 *
 * Polling: `pollFds()` lists the fds the device worker should wait on for POLLIN besides the queues'
 * notify eventfds (the TAP fd, unless a frame is held back); ask again after every call in. When one is
 * readable, `onReadable(fd, queues, memory)` serves it (`pollRequests`/`onPoll` are the same in the
 * shape the vsock back-end uses). Every entry point returns true when the driver wants an interrupt.
 *
 * Threads: run by the device's worker (tests run it in-line). `counters` are words of a
 * SharedArrayBuffer the VMM thread can read at any time.
 */
import { POLLIN } from "../../ffi/libc.ts";
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 } from "../../ffi/libc-net.ts";
import {
  VIRTIO_ID_NET,
  VIRTIO_NET_CONFIG_LAYOUT,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_ECN,
  VIRTIO_NET_HDR_GSO_NONE,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  VIRTIO_NET_HDR_V1_LAYOUT,
  VIRTIO_NET_S_LINK_UP,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from "../../ffi/virtio-layouts.ts";
import { setField, viewOf } from "../../src/arch/x86_64/struct-layout.ts";
import { BunvmmError } from "../../src/errors.ts";
import type { GuestMemory } from "../../src/memory/guest-memory.ts";
import type { VirtioDeviceInfo } from "./mmio-transport.ts";
import { type Chain, gather, type SplitQueue, scatter, splitBuffers, totalLength } from "./queue.ts";
import { Tap, type TapOpenOptions } from "./tap.ts";

export const NET_RX_QUEUE = 0;
export const NET_TX_QUEUE = 1;
export const NET_DEFAULT_QUEUE_SIZE = 256;
export const NET_DEFAULT_MTU = 1500;
/** The smallest MTU IPv4 allows, and the largest the config field holds. */
export const NET_MIN_MTU = 68;
export const NET_MAX_MTU = 65535;
/** The largest frame after the header, either way: a 64 KiB TSO segment with its headers. */
export const NET_MAX_FRAME = 65550;
/** The version-1 header in front of every frame. */
export const NET_HDR_SIZE = VIRTIO_NET_HDR_V1_LAYOUT.size;
/** A non-GSO frame may be this much longer than the MTU: the Ethernet header and one 802.1Q tag. */
const ETH_HLEN = 14;
const VLAN_HLEN = 4;
/** Frames moved per call on the receive side, so one busy TAP cannot hold the worker for long. */
const RX_BATCH = 64;
const MAC_BYTES = 6;
/** The multicast bit of a MAC's first byte; a device address must not have it. */
const MAC_MULTICAST = 0x01;
/** The locally-administered bit of a MAC's first byte: set in generated MACs. */
const MAC_LOCAL_UNICAST = 0x02;

/** Counter words of `NetBackend.counters`. */
export const NET_RX_FRAMES = 0;
export const NET_RX_BYTES = 1;
export const NET_TX_FRAMES = 2;
export const NET_TX_BYTES = 3;
/** Frames from the TAP that could not be placed in guest buffers. */
export const NET_RX_DROPPED = 4;
/** Guest frames dropped: malformed (shorter than the header, bad GSO/checksum request) or oversized. */
export const NET_TX_MALFORMED = 5;
export const NET_TX_OVERSIZED = 6;
/** Guest frames the TAP refused (write failed). */
export const NET_TX_ERRORS = 7;
/** Chains refused by the queue or with the wrong kind of buffers, either queue. */
export const NET_BAD_CHAINS = 8;
/** How many counter words NetBackend keeps. */
export const NET_COUNTERS = 9;

const HDR = VIRTIO_NET_HDR_V1_LAYOUT.fields;

/** An fd a back-end wants polled and for what (POLLIN, POLLOUT): the worker builds its pollfds from these. */
export interface PollRequest {
  readonly fd: number;
  readonly events: number;
}

export interface NetOptions {
  /** The TAP's name. */
  readonly tap: string;
  /** aa:bb:cc:dd:ee:ff, unicast; default: a random locally administered address. */
  readonly mac?: string;
  readonly mtu?: number;
  readonly queueSize?: number;
  /** Refuse to create the TAP when it does not exist. */
  readonly mustExist?: TapOpenOptions["mustExist"];
}

/** Parses a MAC address; throws an "input" error naming it when it is malformed or not unicast. */
export function parseMac(text: string): Uint8Array {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text))
    throw new BunvmmError(
      "input",
      `invalid MAC address "${text}": expected six hex bytes like 02:00:00:00:00:01`,
    );
  const mac = new Uint8Array(text.split(":").map((h) => Number.parseInt(h, 16)));
  if (mac[0]! & MAC_MULTICAST)
    throw new BunvmmError("input", `invalid MAC address "${text}": a multicast address (first byte odd)`);
  if (mac.every((b) => b === 0)) throw new BunvmmError("input", `invalid MAC address "${text}": all zeroes`);
  return mac;
}

/** A random locally administered unicast MAC. */
export function randomMac(): Uint8Array {
  const mac = crypto.getRandomValues(new Uint8Array(MAC_BYTES));
  mac[0] = (mac[0]! & ~(MAC_MULTICAST | MAC_LOCAL_UNICAST)) | MAC_LOCAL_UNICAST;
  return mac;
}

export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

const bit = (n: number) => 1n << BigInt(n);

export class NetBackend {
  /** Counter words (NET_*), readable from any thread. */
  readonly counters = new BigInt64Array(
    new SharedArrayBuffer(NET_COUNTERS * BigInt64Array.BYTES_PER_ELEMENT),
  );
  readonly info: VirtioDeviceInfo;
  readonly mac: Uint8Array;
  readonly mtu: number;
  /** One frame (header included) read from the TAP and not yet placed; `held` bytes of `rxBuf`. */
  private readonly rxBuf = new Uint8Array(NET_HDR_SIZE + NET_MAX_FRAME);
  private held = 0;
  /** Receive chains popped for a frame that did not fit yet, oldest first (all of one reset epoch). */
  private rxChains: Chain[] = [];
  /** The reset epoch whose negotiated offloads the TAP has; -1: none applied yet. */
  private offloadEpoch = -1;
  /**
   * Why the TAP stopped working (deleted while in use, a failed read), or null. Once set, the TAP is
   * no longer polled or read and every transmitted frame counts as an error; the VMM reports it.
   */
  failure: string | null = null;

  /**
   * Opens the TAP named in `options` and builds the device.
   * @throws {BunvmmError} for an invalid MAC or MTU, or a TAP that cannot be attached.
   */
  static open(options: NetOptions): NetBackend {
    const mac = options.mac === undefined ? randomMac() : parseMac(options.mac);
    const mtu = NetBackend.checkMtu(options.mtu ?? NET_DEFAULT_MTU);
    return new NetBackend(Tap.open(options.tap, { mustExist: options.mustExist }), {
      mac: formatMac(mac),
      mtu,
      queueSize: options.queueSize,
    });
  }

  private static checkMtu(mtu: number): number {
    if (!Number.isInteger(mtu) || mtu < NET_MIN_MTU || mtu > NET_MAX_MTU)
      throw new BunvmmError("input", `net mtu ${mtu} is outside ${NET_MIN_MTU}..${NET_MAX_MTU}`);
    return mtu;
  }

  /** A device on an open TAP (which it then owns). */
  constructor(
    readonly tap: Tap,
    options: { mac?: string; mtu?: number; queueSize?: number } = {},
  ) {
    this.mac = options.mac === undefined ? randomMac() : parseMac(options.mac);
    this.mtu = NetBackend.checkMtu(options.mtu ?? NET_DEFAULT_MTU);
    this.info = NetBackend.deviceInfo(this.mac, this.mtu, options.queueSize ?? NET_DEFAULT_QUEUE_SIZE);
  }

  static deviceInfo(mac: Uint8Array, mtu: number, queueSize: number): VirtioDeviceInfo {
    const features =
      bit(VIRTIO_NET_F_CSUM) |
      bit(VIRTIO_NET_F_GUEST_CSUM) |
      bit(VIRTIO_NET_F_MTU) |
      bit(VIRTIO_NET_F_MAC) |
      bit(VIRTIO_NET_F_GUEST_TSO4) |
      bit(VIRTIO_NET_F_GUEST_TSO6) |
      bit(VIRTIO_NET_F_HOST_TSO4) |
      bit(VIRTIO_NET_F_HOST_TSO6) |
      bit(VIRTIO_NET_F_MRG_RXBUF) |
      bit(VIRTIO_NET_F_STATUS) |
      bit(VIRTIO_RING_F_EVENT_IDX) |
      bit(VIRTIO_RING_F_INDIRECT_DESC);
    const L = VIRTIO_NET_CONFIG_LAYOUT;
    const config = new Uint8Array(L.size);
    config.set(mac, L.fields.mac.offset);
    const v = viewOf(config);
    setField(v, 0, L.fields.status, VIRTIO_NET_S_LINK_UP);
    setField(v, 0, L.fields.max_virtqueue_pairs, 1);
    setField(v, 0, L.fields.mtu, mtu);
    // The MAC is read byte by byte; status, max_virtqueue_pairs and mtu at their widths. Speed and the
    // RSS fields belong to features not offered.
    const macBytes = Array.from({ length: MAC_BYTES }, (_, i) => ({
      offset: L.fields.mac.offset + i,
      size: 1,
    }));
    return {
      deviceId: VIRTIO_ID_NET,
      features,
      queues: 2,
      queueNumMax: queueSize,
      config,
      configFields: [...macBytes, L.fields.status, L.fields.max_virtqueue_pairs, L.fields.mtu],
    };
  }

  counter(word: number): number {
    return Number(Atomics.load(this.counters, word));
  }
  private count(word: number, n = 1): void {
    Atomics.add(this.counters, word, BigInt(n));
  }

  /** The fds to wait on for POLLIN now: the TAP, unless a frame is held back for want of buffers. */
  pollFds(): number[] {
    return this.held > 0 || this.failure !== null ? [] : [this.tap.fd];
  }

  /** `pollFds()` in the shape the vsock back-end uses too (fd and events), for one worker loop. */
  pollRequests(): PollRequest[] {
    return this.pollFds().map((fd) => ({ fd, events: POLLIN }));
  }

  /** A polled fd is ready: the same as `onReadable`. */
  onPoll(fd: number, _revents: number, queues: readonly SplitQueue[], memory: GuestMemory): boolean {
    return this.onReadable(fd, queues, memory);
  }

  /** The TAP is readable: deliver frames into the receive queue. */
  onReadable(fd: number, queues: readonly SplitQueue[], memory: GuestMemory): boolean {
    if (fd !== this.tap.fd) return false;
    return this.processRx(queues[NET_RX_QUEUE]!, memory);
  }

  /** A queue's notification: receive buffers posted (queue 0) or frames to send (queue 1). */
  processQueue(queue: SplitQueue, memory: GuestMemory): boolean {
    return queue.index === NET_RX_QUEUE ? this.processRx(queue, memory) : this.processTx(queue, memory);
  }

  /**
   * Matches the TAP's offloads to what the driver accepted, once per driver initialisation; drops
   * receive state that belongs to an earlier one.
   */
  private sync(queue: SplitQueue): void {
    const s = queue.state;
    if (!s.live || this.offloadEpoch === s.resetEpoch) return;
    this.offloadEpoch = s.resetEpoch;
    this.rxChains = [];
    if (this.held > 0) {
      // Read under the old driver's offloads (it may be a partial-checksum or TSO frame): drop it.
      this.count(NET_RX_DROPPED);
      this.held = 0;
    }
    let flags = 0;
    if (s.negotiated(VIRTIO_NET_F_GUEST_CSUM)) {
      flags |= TUN_F_CSUM;
      if (s.negotiated(VIRTIO_NET_F_GUEST_TSO4)) flags |= TUN_F_TSO4;
      if (s.negotiated(VIRTIO_NET_F_GUEST_TSO6)) flags |= TUN_F_TSO6;
    }
    if (this.failure !== null) return;
    try {
      this.tap.setOffload(flags);
    } catch (e) {
      if (!(e instanceof BunvmmError)) throw e;
      this.failure = e.message;
    }
  }

  /** Reads a frame into the held buffer (0 when none waits); a TAP that fails is recorded, not thrown. */
  private readFrame(): number {
    if (this.failure !== null) return 0;
    try {
      return this.tap.read(this.rxBuf);
    } catch (e) {
      if (!(e instanceof BunvmmError)) throw e;
      this.failure = e.message;
      return 0;
    }
  }

  /** Moves frames from the TAP into receive buffers while both last; true when the driver wants an interrupt. */
  processRx(queue: SplitQueue, memory: GuestMemory): boolean {
    this.sync(queue);
    if (!queue.ready) {
      // No driver yet (or a broken one): hold one frame so the TAP stops polling readable; the rest
      // wait in the TAP. The driver's first receive notification brings us back.
      if (this.held === 0) this.held = this.readFrame();
      return false;
    }
    for (let frames = 0; frames < RX_BATCH; frames++) {
      if (this.held === 0) {
        this.held = this.readFrame();
        if (this.held === 0) break;
      }
      if (!this.place(queue, memory)) break;
    }
    return queue.signalIfNeeded();
  }

  /**
   * Places the held frame into receive chains. Returns false when it has to wait for more buffers
   * (the frame stays held); true when it was delivered or dropped.
   */
  private place(queue: SplitQueue, memory: GuestMemory): boolean {
    const frame = this.rxBuf.subarray(0, this.held);
    if (!queue.state.negotiated(VIRTIO_NET_F_MRG_RXBUF)) {
      // One chain per frame. One too small for it goes back empty and the frame is dropped: holding
      // it would block every later frame behind it.
      const chain = this.popReceiveChain(queue);
      if (chain === null) return false;
      this.held = 0;
      if (totalLength(chain.writable) < frame.length) {
        this.count(NET_RX_DROPPED);
        queue.pushUsed(chain, 0);
        return true;
      }
      this.deliver(queue, memory, frame, [chain]);
      return true;
    }
    let room = 0;
    for (const c of this.rxChains) room += totalLength(c.writable);
    while (room < frame.length) {
      const chain = this.popReceiveChain(queue);
      if (chain === null) {
        if (this.rxChains.length < queue.state.queueConfig(queue.index).size) return false;
        // Every descriptor of the ring is held and the frame still does not fit: it never will.
        this.count(NET_RX_DROPPED);
        this.held = 0;
        return true;
      }
      this.rxChains.push(chain);
      room += totalLength(chain.writable);
    }
    // Take chains in order until the frame is written; num_buffers says how many.
    const taken: Chain[] = [];
    for (let at = 0; at < frame.length; ) {
      const chain = this.rxChains.shift()!;
      taken.push(chain);
      at += totalLength(chain.writable);
    }
    this.held = 0;
    this.deliver(queue, memory, frame, taken);
    return true;
  }

  /** The next receive chain fit to take a frame; refused or wrong-shaped ones complete empty. */
  private popReceiveChain(queue: SplitQueue): Chain | null {
    for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
      if (chain.error === null && chain.readable.length === 0 && totalLength(chain.writable) >= NET_HDR_SIZE)
        return chain;
      this.count(NET_BAD_CHAINS);
      queue.pushUsed(chain, 0);
    }
    return null;
  }

  /** Writes `frame` across `chains` (enough room, in order), sets num_buffers, publishes them. */
  private deliver(queue: SplitQueue, memory: GuestMemory, frame: Uint8Array, chains: readonly Chain[]): void {
    const lengths: number[] = [];
    let at = 0;
    for (const chain of chains) {
      const n = scatter(memory, chain.writable, frame.subarray(at));
      lengths.push(n);
      at += n;
    }
    // num_buffers sits inside the header, which lies in the first chain (at least NET_HDR_SIZE bytes).
    const count = new Uint8Array(HDR.num_buffers.size);
    viewOf(count).setUint16(0, chains.length, true);
    const [, fromField] = splitBuffers(chains[0]!.writable, HDR.num_buffers.offset);
    scatter(memory, fromField, count);
    for (const [i, chain] of chains.entries()) queue.pushUsed(chain, lengths[i]!);
    this.count(NET_RX_FRAMES);
    this.count(NET_RX_BYTES, frame.length - NET_HDR_SIZE);
  }

  /** Sends every transmit chain's frame to the TAP; true when the driver wants an interrupt. */
  processTx(queue: SplitQueue, memory: GuestMemory): boolean {
    this.sync(queue);
    for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
      this.transmit(chain, queue, memory);
      queue.pushUsed(chain, 0);
    }
    return queue.signalIfNeeded();
  }

  private transmit(chain: Chain, queue: SplitQueue, memory: GuestMemory): void {
    if (chain.error !== null || chain.writable.length > 0) {
      this.count(NET_BAD_CHAINS);
      return;
    }
    const len = totalLength(chain.readable);
    if (len < NET_HDR_SIZE) {
      this.count(NET_TX_MALFORMED);
      return;
    }
    if (len > NET_HDR_SIZE + NET_MAX_FRAME) {
      this.count(NET_TX_OVERSIZED);
      return;
    }
    // The header is checked from a copy; the frame goes to the TAP straight from guest RAM (writev).
    // A driver rewriting the header meanwhile gains nothing: the kernel checks what it reads again.
    const [headerBufs] = splitBuffers(chain.readable, NET_HDR_SIZE);
    const v = viewOf(gather(memory, headerBufs));
    const gso = v.getUint8(HDR.gso_type.offset);
    const flags = v.getUint8(HDR.flags.offset);
    const s = queue.state;
    const gsoKind = gso & ~VIRTIO_NET_HDR_GSO_ECN;
    const gsoAllowed =
      gso === VIRTIO_NET_HDR_GSO_NONE ||
      (gsoKind === VIRTIO_NET_HDR_GSO_TCPV4 && s.negotiated(VIRTIO_NET_F_HOST_TSO4)) ||
      (gsoKind === VIRTIO_NET_HDR_GSO_TCPV6 && s.negotiated(VIRTIO_NET_F_HOST_TSO6));
    const csumAllowed = (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) === 0 || s.negotiated(VIRTIO_NET_F_CSUM);
    // ECN on a TSO frame needs HOST_ECN, which is not offered.
    if (!gsoAllowed || !csumAllowed || (gso & VIRTIO_NET_HDR_GSO_ECN) !== 0) {
      this.count(NET_TX_MALFORMED);
      return;
    }
    if (gso === VIRTIO_NET_HDR_GSO_NONE && len - NET_HDR_SIZE > this.mtu + ETH_HLEN + VLAN_HLEN) {
      this.count(NET_TX_OVERSIZED);
      return;
    }
    if (this.tap.writev(chain.readable.map((b) => memory.slice(b.addr, b.len))) !== 0) {
      this.count(NET_TX_ERRORS);
      return;
    }
    this.count(NET_TX_FRAMES);
    this.count(NET_TX_BYTES, len - NET_HDR_SIZE);
  }

  close(): void {
    this.tap.close();
  }
}

/**
 * Counter words of a net device's spec: NetBackend's own words (NET_*) at the same positions, then
 * NET_TAP_FAILED (1 once the TAP stopped working: deleted while in use), below the common words.
 */
export const NET_TAP_FAILED = 13;
