/**
 * virtio-vsock back-end with Firecracker's "hybrid" host side: guest AF_VSOCK stream connections map to
 * host Unix stream sockets. Queues: 0 receive (host -> guest packets), 1 transmit (guest -> host
 * packets), 2 event. Config space: the guest's CID (le64). The host's CID is 2.
 *
 * Host-initiated connections: the back-end listens on the Unix socket `socket`. A client connects and
 * writes `CONNECT <port>\n`; the back-end picks a local port (from 2^30 up, unused) and sends OP_REQUEST
 * to the guest's `port`; on OP_RESPONSE it writes `OK <local port>\n` to the client and from then on the
 * bytes flow both ways (OP_RW). On OP_RST (nobody listens in the guest) the client's socket is closed.
 * A line that is not `CONNECT <port>` within 64 bytes closes the client.
 *
 * Guest-initiated connections: OP_REQUEST to host port P connects to the Unix socket `<socket>_P`
 * (non-blocking; a socket that is missing, refuses or has a full backlog gets OP_RST); on success the
 * guest gets OP_RESPONSE.
 *
 * Flow control, per connection, both ways bounded:
 *  - guest -> host: we advertise buf_alloc = VSOCK_CONN_BUFFER and fwd_cnt = bytes written to the host
 *    socket. Guest data the host socket does not take at once waits in the connection's buffer, which
 *    the guest's respect of our credit keeps within buf_alloc; a guest that sends beyond it has the
 *    connection reset (counted). A host that stops reading therefore stalls only its own connection:
 *    the guest runs out of credit for it. CREDIT_UPDATE goes out when the guest's view of our free space
 *    falls under VSOCK_CREDIT_LOW_WATER after we forwarded bytes, and in answer to CREDIT_REQUEST.
 *  - host -> guest: a host socket is read only while the guest has credit (its buf_alloc minus what we
 *    sent and it has not yet forwarded) and at most one chunk is held per connection; with no credit,
 *    host bytes waiting (seen by one more poll, not read) bring one CREDIT_REQUEST, and the socket leaves
 *    the poll list until the guest's credit comes back.
 *  - OP_SHUTDOWN: the guest's SEND flag becomes shutdown(SHUT_WR) on the host socket once our buffer is
 *    written (the host reads EOF), RCV stops reading the host socket; both: the connection is closed and
 *    answered with OP_RST. The host closing its side (EOF) becomes OP_SHUTDOWN(SEND) after the data read
 *    before it.
 *  - OP_RST answers: an unknown op, a type other than STREAM, any packet for a connection that does not
 *    exist (except RST), a REQUEST for one that does, a malformed RW. Packets not from the guest's CID
 *    or not to the host's are dropped. Pending RSTs are bounded (VSOCK_MAX_PENDING_RST; excess dropped
 *    and counted), so a guest that floods cannot grow memory.
 *
 * All host sockets are non-blocking. The worker waits on `pollRequests()` (fd + POLLIN/POLLOUT; ask
 * again after every call in, the set changes with credit and buffers) besides the queues' notify
 * eventfds, and calls `onPoll(fd, revents, queues, memory)`. Every entry point returns true when the
 * driver wants an interrupt. The listener can be bound beforehand on another thread (`listen`, then
 * `listenerFd`), so a socket path in use is reported before the VM starts.
 *
 * Bounds: at most VSOCK_MAX_CONNECTIONS connections and handshakes; per connection at most
 * VSOCK_CONN_BUFFER guest bytes and VSOCK_MAX_PAYLOAD host bytes held.
 *
 * Reset: a device reset (the transport's reset epoch changes) or `reset()` closes every host socket (the
 * host side sees EOF) and forgets every connection; the listener stays. After restoring a snapshot,
 * `transportReset(...)` also posts VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue, which tells
 * the guest its connections are gone.
 *
 * Threads: run by the device's worker (tests run it in-line). `counters` are words of a
 * SharedArrayBuffer the VMM thread can read at any time.
 */
import { existsSync, lstatSync, unlinkSync } from "node:fs";
import { EAGAIN } from "../../ffi/errno-names.ts";
import { errno, libc, POLLERR, POLLHUP, POLLIN } from "../../ffi/libc.ts";
import {
  AF_UNIX,
  ECONNABORTED,
  libcNet,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  POLLOUT,
  SHUT_WR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  sockaddrUn,
} from "../../ffi/libc-net.ts";
import {
  VIRTIO_ID_VSOCK,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTIO_VSOCK_CONFIG_LAYOUT,
  VIRTIO_VSOCK_EVENT_LAYOUT,
  VIRTIO_VSOCK_EVENT_TRANSPORT_RESET,
  VIRTIO_VSOCK_HDR_LAYOUT,
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VIRTIO_VSOCK_TYPE_STREAM,
} from "../../ffi/virtio-layouts.ts";
import { viewOf } from "../../src/arch/x86_64/struct-layout.ts";
import { BunvmmError } from "../../src/errors.ts";
import type { GuestMemory } from "../../src/memory/guest-memory.ts";
import { LibcError } from "../../src/sys/libc-error.ts";
import type { VirtioDeviceInfo } from "./mmio-transport.ts";
import type { PollRequest } from "./net.ts";
import { type Chain, gather, type SplitQueue, scatter, splitBuffers, totalLength } from "./queue.ts";

export const VSOCK_RX_QUEUE = 0;
export const VSOCK_TX_QUEUE = 1;
export const VSOCK_EVENT_QUEUE = 2;
export const VSOCK_QUEUE_SIZE = 256;
/** VMADDR_CID_HOST: the CID the guest reaches the host at. */
export const VSOCK_HOST_CID = 2;
/** The lowest CID a guest may have (0, 1 and 2 are reserved) and one above the highest (VMADDR_CID_ANY). */
export const VSOCK_MIN_GUEST_CID = 3;
const VSOCK_CID_ANY = 0xffff_ffff;
/** buf_alloc we advertise: guest bytes we hold per connection for a host socket that has not read them. */
export const VSOCK_CONN_BUFFER = 256 * 1024;
/** Below this much free space (as the guest sees it) we send CREDIT_UPDATE after forwarding. */
export const VSOCK_CREDIT_LOW_WATER = 64 * 1024;
/** The most host bytes read at once for one connection (and so the most payload in one packet). */
export const VSOCK_MAX_PAYLOAD = 64 * 1024;
export const VSOCK_MAX_CONNECTIONS = 1024;
export const VSOCK_MAX_PENDING_RST = 256;
/** Longest `CONNECT <port>\n` line accepted from a host client. */
export const VSOCK_HANDSHAKE_MAX = 64;
/** Local ports for host-initiated connections are taken from here up. */
export const VSOCK_FIRST_LOCAL_PORT = 2 ** 30;
/** Host clients accepted per listener wake-up, so one burst cannot hold the worker. */
const ACCEPT_BATCH = 16;
const LISTEN_BACKLOG = 128;
const U32 = 2 ** 32;
const HDR = VIRTIO_VSOCK_HDR_LAYOUT.fields;
const HDR_SIZE = VIRTIO_VSOCK_HDR_LAYOUT.size;
const SHUTDOWN_BOTH = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
/** The end of the `CONNECT <port>` line. */
const NEWLINE = 0x0a;

/** Counter words of `VsockBackend.counters`. */
export const VSOCK_CONNECTIONS = 0;
export const VSOCK_BYTES_TO_GUEST = 1;
export const VSOCK_BYTES_TO_HOST = 2;
export const VSOCK_RST_SENT = 3;
/** Packets dropped or answered with RST for breaking the rules (bad header, unknown op, bad length). */
export const VSOCK_BAD_PACKETS = 4;
/** Chains refused by the queue or with the wrong kind of buffers. */
export const VSOCK_BAD_CHAINS = 5;
export const VSOCK_CREDIT_VIOLATIONS = 6;
/** RSTs not sent because too many were pending. */
export const VSOCK_RST_DROPPED = 7;
/** Host clients closed for a bad handshake or too many connections. */
export const VSOCK_REFUSED_CLIENTS = 8;
/** How many counter words VsockBackend keeps. */
export const VSOCK_COUNTERS = 9;

export interface VsockOptions {
  /** The guest's CID (3 .. 2^32 - 2). */
  readonly cid: number;
  /** Path of the host-side Unix socket; guest-initiated connections to port P go to `<socket>_P`. */
  readonly socket: string;
  readonly queueSize?: number;
  /**
   * A listening socket already bound to `socket` (by `VsockBackend.listen`, e.g. on the VMM thread so
   * a path in use stops the VM before it starts); the back-end takes it over instead of binding.
   */
  readonly listenerFd?: number;
}

/** A vsock packet header's fields (ports and counters as numbers). */
interface Header {
  srcCid: bigint;
  dstCid: bigint;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

enum ConnState {
  /** Host-initiated: OP_REQUEST queued or sent, waiting for OP_RESPONSE. */
  Connecting,
  Established,
}

interface Conn {
  readonly fd: number;
  /** Host-side port (our src_port) and the guest's port. */
  readonly localPort: number;
  readonly peerPort: number;
  readonly hostInitiated: boolean;
  state: ConnState;
  /** Guest bytes not yet written to the host socket, oldest first, and their total. */
  toHost: Uint8Array[];
  toHostBytes: number;
  /** Bytes received from the guest / written to the host / fwd_cnt last told the guest (all mod 2^32). */
  rxCnt: number;
  fwdCnt: number;
  sentFwdCnt: number;
  /** Host bytes read and not yet sent to the guest. */
  toGuest: Uint8Array | null;
  /** Bytes sent to the guest (mod 2^32), and the guest's last buf_alloc and fwd_cnt. */
  txCnt: number;
  peerBufAlloc: number;
  peerFwdCnt: number;
  /** Control packets owed to the guest. */
  sendRequest: boolean;
  sendResponse: boolean;
  sendCreditUpdate: boolean;
  sendCreditRequest: boolean;
  /** A CREDIT_REQUEST went out and no credit came back since: do not repeat it. */
  creditRequested: boolean;
  /** The host side hit EOF: owe the guest SHUTDOWN(SEND) once toGuest is sent. */
  hostEof: boolean;
  sentShutdown: boolean;
  /** SHUTDOWN flags the guest sent (RCV: it reads no more; SEND: it sends no more). */
  peerShutdown: number;
  /** shutdown(SHUT_WR) was done on the host socket. */
  hostWriteClosed: boolean;
}

const key = (localPort: number, peerPort: number) => `${localPort}:${peerPort}`;

function readHeader(bytes: Uint8Array): Header {
  const v = viewOf(bytes);
  return {
    srcCid: v.getBigUint64(HDR.src_cid.offset, true),
    dstCid: v.getBigUint64(HDR.dst_cid.offset, true),
    srcPort: v.getUint32(HDR.src_port.offset, true),
    dstPort: v.getUint32(HDR.dst_port.offset, true),
    len: v.getUint32(HDR.len.offset, true),
    type: v.getUint16(HDR.type.offset, true),
    op: v.getUint16(HDR.op.offset, true),
    flags: v.getUint32(HDR.flags.offset, true),
    bufAlloc: v.getUint32(HDR.buf_alloc.offset, true),
    fwdCnt: v.getUint32(HDR.fwd_cnt.offset, true),
  };
}

export class VsockBackend {
  /** Counter words (VSOCK_*), readable from any thread. */
  readonly counters = new BigInt64Array(
    new SharedArrayBuffer(VSOCK_COUNTERS * BigInt64Array.BYTES_PER_ELEMENT),
  );
  readonly info: VirtioDeviceInfo;
  readonly cid: number;
  readonly socketPath: string;
  private readonly listener: number;
  /** Host clients that have not finished `CONNECT <port>\n`: fd -> bytes so far. */
  private readonly handshakes = new Map<number, Uint8Array>();
  private readonly conns = new Map<string, Conn>();
  private readonly byFd = new Map<number, Conn>();
  /** Connections that may owe the guest a packet, in the order they are served. */
  private readonly outbox = new Set<Conn>();
  /** RSTs owed for packets that named no connection (or whose connection is gone): [src_port, dst_port]. */
  private readonly rsts: [number, number][] = [];
  private nextLocalPort = VSOCK_FIRST_LOCAL_PORT;
  private epoch = -1;
  /** A receive chain popped with nothing to put in it yet. */
  private rxChain: Chain | null = null;
  /** accept4 failed for want of resources: the listener is not polled until a connection closes. */
  private listenerPaused = false;
  /** TRANSPORT_RESET owed on the event queue (no event buffer was posted when it happened). */
  private eventPending = false;
  private closed = false;

  /**
   * Listens on `options.socket` (a stale socket file nobody listens on is replaced).
   * @throws {BunvmmError} for a CID out of range, a path in use or too long, or a failing listen.
   */
  constructor(options: VsockOptions) {
    const { cid, socket } = options;
    if (!Number.isInteger(cid) || cid < VSOCK_MIN_GUEST_CID || cid >= VSOCK_CID_ANY)
      throw new BunvmmError(
        "input",
        `vsock cid ${cid} is outside ${VSOCK_MIN_GUEST_CID}..${VSOCK_CID_ANY - 1}`,
      );
    this.cid = cid;
    this.socketPath = socket;
    this.info = VsockBackend.deviceInfo(cid, options.queueSize ?? VSOCK_QUEUE_SIZE);
    this.listener = options.listenerFd ?? VsockBackend.listen(socket);
  }

  static deviceInfo(cid: number, queueSize: number): VirtioDeviceInfo {
    const L = VIRTIO_VSOCK_CONFIG_LAYOUT;
    const config = new Uint8Array(L.size);
    viewOf(config).setBigUint64(L.fields.guest_cid.offset, BigInt(cid), true);
    return {
      deviceId: VIRTIO_ID_VSOCK,
      features: (1n << BigInt(VIRTIO_RING_F_EVENT_IDX)) | (1n << BigInt(VIRTIO_RING_F_INDIRECT_DESC)),
      queues: 3,
      queueNumMax: queueSize,
      config,
      configFields: [L.fields.guest_cid],
    };
  }

  /**
   * Binds and listens (non-blocking) on the Unix socket `path`, replacing a stale socket file nobody
   * listens on. Returns the fd. @throws {BunvmmError} for a path in use, not a socket, or too long.
   */
  static listen(path: string): number {
    let addr: ReturnType<typeof sockaddrUn>;
    try {
      addr = sockaddrUn(path);
    } catch (e) {
      throw new BunvmmError("input", `vsock socket: ${(e as Error).message}`);
    }
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket())
        throw new BunvmmError("input", `vsock socket path ${path} exists and is not a socket`);
      const probe = VsockBackend.connect(path);
      if (probe >= 0) {
        libc.close(probe);
        throw new BunvmmError("input", `vsock socket path ${path} is in use: another VM listens on it`);
      }
      unlinkSync(path); // a socket file left behind by a VM that is gone
    }
    const fd = libcNet.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new LibcError("socket(AF_UNIX) for the vsock listener", errno());
    if (libcNet.bind(fd, addr.addr, addr.len) !== 0 || libcNet.listen(fd, LISTEN_BACKLOG) !== 0) {
      const e = errno();
      libc.close(fd);
      throw new LibcError(`bind/listen on vsock socket ${path}`, e);
    }
    return fd;
  }

  /** A non-blocking connect to a Unix socket: the fd, or -1 (missing, refused, backlog full, path too long). */
  private static connect(path: string): number {
    let addr: ReturnType<typeof sockaddrUn>;
    try {
      addr = sockaddrUn(path);
    } catch {
      return -1;
    }
    const fd = libcNet.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (libcNet.connect(fd, addr.addr, addr.len) !== 0) {
      libc.close(fd);
      return -1;
    }
    return fd;
  }

  counter(word: number): number {
    return Number(Atomics.load(this.counters, word));
  }
  private count(word: number, n = 1): void {
    Atomics.add(this.counters, word, BigInt(n));
  }

  /** Open connections (established or waiting for the guest's answer). */
  get connectionCount(): number {
    return this.conns.size;
  }

  /** The fds to poll now and for what; ask again after every call in. */
  pollRequests(): PollRequest[] {
    const out: PollRequest[] = this.listenerPaused ? [] : [{ fd: this.listener, events: POLLIN }];
    for (const fd of this.handshakes.keys()) out.push({ fd, events: POLLIN });
    for (const c of this.conns.values()) {
      const events = (this.wantsRead(c) ? POLLIN : 0) | (c.toHostBytes > 0 ? POLLOUT : 0);
      if (events !== 0) out.push({ fd: c.fd, events });
    }
    return out;
  }

  /** Bytes the guest can take now on `c`. */
  private credit(c: Conn): number {
    return Math.max(0, c.peerBufAlloc - ((c.txCnt - c.peerFwdCnt + U32) % U32));
  }

  /**
   * Whether to poll the host socket for POLLIN: while the guest has credit and nothing is held; with no
   * credit, once more, so host bytes waiting turn into one CREDIT_REQUEST (not read).
   */
  private wantsRead(c: Conn): boolean {
    return (
      c.state === ConnState.Established &&
      !c.hostEof &&
      c.toGuest === null &&
      (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) === 0 &&
      (this.credit(c) > 0 || !c.creditRequested)
    );
  }

  /** Drops every connection (host sockets closed) if the transport was reset since the last call. */
  private sync(state: SplitQueue["state"]): void {
    if (state.resetEpoch === this.epoch) return;
    this.epoch = state.resetEpoch;
    this.dropAll();
    this.eventPending = false; // a new driver starts with no connection to be told about
  }

  /** Closes every host socket of a connection or a pending handshake; the listener stays. */
  reset(): void {
    this.dropAll();
  }

  private dropAll(): void {
    for (const fd of this.handshakes.keys()) libc.close(fd);
    this.handshakes.clear();
    for (const c of this.conns.values()) libc.close(c.fd);
    this.conns.clear();
    this.byFd.clear();
    this.outbox.clear();
    this.rsts.length = 0;
    this.rxChain = null;
    this.listenerPaused = false;
  }

  /**
   * Drops every connection and tells the guest with VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event
   * queue (now, or when it next posts an event buffer). For use after restoring a snapshot.
   */
  transportReset(events: SplitQueue, memory: GuestMemory): boolean {
    this.sync(events.state); // a reset seen later must not take the event back
    this.dropAll();
    this.eventPending = true;
    return this.deliverEvent(events, memory);
  }

  private deliverEvent(events: SplitQueue, memory: GuestMemory): boolean {
    while (this.eventPending) {
      const chain = events.pop();
      if (chain === null) break;
      const size = VIRTIO_VSOCK_EVENT_LAYOUT.size;
      if (chain.error !== null || chain.readable.length > 0 || totalLength(chain.writable) < size) {
        this.count(VSOCK_BAD_CHAINS);
        events.pushUsed(chain, 0);
        continue;
      }
      const ev = new Uint8Array(size);
      viewOf(ev).setUint32(
        VIRTIO_VSOCK_EVENT_LAYOUT.fields.id.offset,
        VIRTIO_VSOCK_EVENT_TRANSPORT_RESET,
        true,
      );
      scatter(memory, chain.writable, ev);
      events.pushUsed(chain, size);
      this.eventPending = false;
    }
    return events.signalIfNeeded();
  }

  /**
   * A queue's notification: guest packets (1), receive buffers posted (0), event buffers posted (2).
   * `queues` are all three (sending answers needs the receive queue).
   */
  processQueue(queue: SplitQueue, memory: GuestMemory, queues: readonly SplitQueue[]): boolean {
    this.sync(queue.state);
    const rx = queues[VSOCK_RX_QUEUE]!;
    if (queue.index === VSOCK_EVENT_QUEUE) return this.deliverEvent(queue, memory);
    let txSignal = false;
    if (queue.index === VSOCK_TX_QUEUE) {
      for (let chain = queue.pop(); chain !== null; chain = queue.pop()) {
        this.handleGuestPacket(chain, memory);
        queue.pushUsed(chain, 0);
      }
      txSignal = queue.signalIfNeeded();
    }
    this.pumpRx(rx, memory);
    return rx.signalIfNeeded() || txSignal;
  }

  /** A polled fd is ready (`revents` from poll). */
  onPoll(fd: number, revents: number, queues: readonly SplitQueue[], memory: GuestMemory): boolean {
    const rx = queues[VSOCK_RX_QUEUE]!;
    this.sync(rx.state);
    if (fd === this.listener) this.acceptClients();
    else if (this.handshakes.has(fd)) this.readHandshake(fd);
    else {
      const c = this.byFd.get(fd);
      if (c) {
        if (revents & (POLLOUT | POLLERR | POLLHUP) && c.toHostBytes > 0) this.flushToHost(c);
        if (this.conns.has(key(c.localPort, c.peerPort)) && revents & (POLLIN | POLLERR | POLLHUP))
          if (this.wantsRead(c)) this.readFromHost(c);
      }
    }
    this.pumpRx(rx, memory);
    return rx.signalIfNeeded();
  }

  // -------------------------------------------------------------------------------------------------
  // Host side

  private acceptClients(): void {
    for (let i = 0; i < ACCEPT_BATCH; i++) {
      const fd = libcNet.accept4(this.listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        const e = errno();
        // Out of fds (EMFILE, ENFILE, ENOBUFS, ...): the client stays queued and the listener stays
        // readable, so stop polling it until a connection closes rather than spin.
        if (e !== EAGAIN && e !== ECONNABORTED) this.listenerPaused = true;
        return;
      }
      if (this.conns.size + this.handshakes.size >= VSOCK_MAX_CONNECTIONS) {
        this.count(VSOCK_REFUSED_CLIENTS);
        libc.close(fd);
        continue;
      }
      this.handshakes.set(fd, new Uint8Array(0));
    }
  }

  private readHandshake(fd: number): void {
    const sofar = this.handshakes.get(fd)!;
    const buf = new Uint8Array(VSOCK_HANDSHAKE_MAX - sofar.length);
    const n = Number(libcNet.recv(fd, buf, buf.length, MSG_DONTWAIT));
    if (n < 0 && errno() === EAGAIN) return;
    const refuse = () => {
      this.count(VSOCK_REFUSED_CLIENTS);
      this.handshakes.delete(fd);
      libc.close(fd);
      this.listenerPaused = false;
    };
    if (n <= 0) {
      refuse(); // EOF or an error before the line
      return;
    }
    const bytes = new Uint8Array(sofar.length + n);
    bytes.set(sofar);
    bytes.set(buf.subarray(0, n), sofar.length);
    const nl = bytes.indexOf(NEWLINE);
    if (nl < 0) {
      if (bytes.length >= VSOCK_HANDSHAKE_MAX) {
        refuse();
        return;
      }
      this.handshakes.set(fd, bytes);
      return;
    }
    const line = new TextDecoder().decode(bytes.subarray(0, nl));
    const m = /^CONNECT (\d{1,10})$/.exec(line);
    const port = m ? Number(m[1]) : U32;
    if (port >= U32) {
      refuse();
      return;
    }
    this.handshakes.delete(fd);
    const local = this.allocateLocalPort(port);
    const c = this.addConn(fd, local, port, true, ConnState.Connecting);
    c.sendRequest = true;
    // Bytes the client wrote after the line go to the guest once the connection is up.
    if (nl + 1 < bytes.length) c.toGuest = bytes.slice(nl + 1);
    this.outbox.add(c);
  }

  private allocateLocalPort(peerPort: number): number {
    // Ends: there are far fewer connections (VSOCK_MAX_CONNECTIONS) than ports from 2^30 up.
    for (;;) {
      const p = this.nextLocalPort;
      this.nextLocalPort = p + 1 >= U32 ? VSOCK_FIRST_LOCAL_PORT : p + 1;
      if (!this.conns.has(key(p, peerPort))) return p;
    }
  }

  private addConn(
    fd: number,
    localPort: number,
    peerPort: number,
    hostInitiated: boolean,
    state: ConnState,
  ): Conn {
    const c: Conn = {
      fd,
      localPort,
      peerPort,
      hostInitiated,
      state,
      toHost: [],
      toHostBytes: 0,
      rxCnt: 0,
      fwdCnt: 0,
      sentFwdCnt: 0,
      toGuest: null,
      txCnt: 0,
      peerBufAlloc: 0,
      peerFwdCnt: 0,
      sendRequest: false,
      sendResponse: false,
      sendCreditUpdate: false,
      sendCreditRequest: false,
      creditRequested: false,
      hostEof: false,
      sentShutdown: false,
      peerShutdown: 0,
      hostWriteClosed: false,
    };
    this.conns.set(key(localPort, peerPort), c);
    this.byFd.set(fd, c);
    this.count(VSOCK_CONNECTIONS);
    return c;
  }

  /** Closes the host socket and forgets `c`; with `rst`, tells the guest with OP_RST. */
  private closeConn(c: Conn, rst: boolean): void {
    libc.close(c.fd);
    this.listenerPaused = false;
    this.conns.delete(key(c.localPort, c.peerPort));
    this.byFd.delete(c.fd);
    this.outbox.delete(c);
    if (rst) this.queueRst(c.localPort, c.peerPort);
  }

  private queueRst(srcPort: number, dstPort: number): void {
    if (this.rsts.length >= VSOCK_MAX_PENDING_RST) {
      this.count(VSOCK_RST_DROPPED);
      return;
    }
    this.rsts.push([srcPort, dstPort]);
  }

  private readFromHost(c: Conn): void {
    const want = Math.min(this.credit(c), VSOCK_MAX_PAYLOAD);
    if (want === 0) {
      // Host bytes wait and the guest has no room: ask it for its credit, once, and stop polling.
      c.creditRequested = true;
      c.sendCreditRequest = true;
      this.outbox.add(c);
      return;
    }
    const buf = new Uint8Array(want);
    const n = Number(libcNet.recv(c.fd, buf, want, MSG_DONTWAIT));
    if (n > 0) {
      c.toGuest = buf.subarray(0, n);
      this.outbox.add(c);
    } else if (n === 0) {
      c.hostEof = true; // SHUTDOWN(SEND) follows once toGuest is sent
      this.outbox.add(c);
    } else if (errno() !== EAGAIN) this.closeConn(c, true);
  }

  /** Writes buffered guest bytes to the host socket; credits the guest; finishes a pending shutdown. */
  private flushToHost(c: Conn): void {
    while (c.toHost.length > 0) {
      const chunk = c.toHost[0]!;
      const n = Number(libcNet.send(c.fd, chunk, chunk.length, MSG_DONTWAIT | MSG_NOSIGNAL));
      if (n < 0) {
        if (errno() === EAGAIN) break;
        this.closeConn(c, true); // the host closed its end (EPIPE, ECONNRESET)
        return;
      }
      c.fwdCnt = (c.fwdCnt + n) % U32;
      c.toHostBytes -= n;
      this.count(VSOCK_BYTES_TO_HOST, n);
      if (n === chunk.length) c.toHost.shift();
      else {
        c.toHost[0] = chunk.subarray(n);
        break;
      }
    }
    const seenFree = VSOCK_CONN_BUFFER - ((c.rxCnt - c.sentFwdCnt + U32) % U32);
    if (seenFree < VSOCK_CREDIT_LOW_WATER && c.fwdCnt !== c.sentFwdCnt) {
      c.sendCreditUpdate = true;
      this.outbox.add(c);
    }
    this.finishShutdown(c);
  }

  /** Applies the guest's SHUTDOWN flags once our buffer toward the host is written. */
  private finishShutdown(c: Conn): void {
    if (c.toHostBytes > 0 || !this.conns.has(key(c.localPort, c.peerPort))) return;
    if ((c.peerShutdown & SHUTDOWN_BOTH) === SHUTDOWN_BOTH) {
      this.closeConn(c, true);
      return;
    }
    if (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND && !c.hostWriteClosed) {
      c.hostWriteClosed = true;
      libcNet.shutdown(c.fd, SHUT_WR);
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Guest packets

  private handleGuestPacket(chain: Chain, memory: GuestMemory): void {
    if (chain.error !== null || chain.writable.length > 0) {
      this.count(VSOCK_BAD_CHAINS);
      return;
    }
    const total = totalLength(chain.readable);
    if (total < HDR_SIZE) {
      this.count(VSOCK_BAD_PACKETS);
      return;
    }
    const [hdrBufs, payloadBufs] = splitBuffers(chain.readable, HDR_SIZE);
    const h = readHeader(gather(memory, hdrBufs));
    if (h.srcCid !== BigInt(this.cid) || h.dstCid !== BigInt(VSOCK_HOST_CID)) {
      this.count(VSOCK_BAD_PACKETS); // not from our guest or not to us: dropped, as nobody could answer
      return;
    }
    const c = this.conns.get(key(h.dstPort, h.srcPort));
    const rst = () => {
      this.count(VSOCK_BAD_PACKETS);
      if (c) this.closeConn(c, true);
      else this.queueRst(h.dstPort, h.srcPort);
    };
    if (h.op === VIRTIO_VSOCK_OP_RST) {
      if (c) this.closeConn(c, false);
      return;
    }
    if (h.type !== VIRTIO_VSOCK_TYPE_STREAM) {
      rst();
      return;
    }
    if (h.op === VIRTIO_VSOCK_OP_REQUEST) {
      if (c) {
        rst();
        return;
      }
      this.guestConnect(h);
      return;
    }
    if (!c) {
      if (h.op < VIRTIO_VSOCK_OP_REQUEST || h.op > VIRTIO_VSOCK_OP_CREDIT_REQUEST)
        this.count(VSOCK_BAD_PACKETS);
      this.queueRst(h.dstPort, h.srcPort);
      return;
    }
    c.peerBufAlloc = h.bufAlloc;
    c.peerFwdCnt = h.fwdCnt;
    if (this.credit(c) > 0) c.creditRequested = false;
    if (c.toGuest !== null || c.hostEof) this.outbox.add(c);
    switch (h.op) {
      case VIRTIO_VSOCK_OP_RESPONSE:
        if (c.state !== ConnState.Connecting) {
          rst();
          return;
        }
        this.hostConnected(c);
        return;
      case VIRTIO_VSOCK_OP_RW: {
        const payload = totalLength(payloadBufs);
        if (c.state !== ConnState.Established || h.len === 0 || h.len > payload) {
          rst();
          return;
        }
        if (c.toHostBytes + h.len > VSOCK_CONN_BUFFER || c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) {
          this.count(VSOCK_CREDIT_VIOLATIONS);
          rst();
          return;
        }
        const [data] = splitBuffers(payloadBufs, h.len);
        c.toHost.push(gather(memory, data));
        c.toHostBytes += h.len;
        c.rxCnt = (c.rxCnt + h.len) % U32;
        this.flushToHost(c);
        return;
      }
      case VIRTIO_VSOCK_OP_SHUTDOWN:
        c.peerShutdown |= h.flags & SHUTDOWN_BOTH;
        this.finishShutdown(c);
        return;
      case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        return;
      case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        c.sendCreditUpdate = true;
        this.outbox.add(c);
        return;
      default:
        rst();
        return;
    }
  }

  private guestConnect(h: Header): void {
    if (this.conns.size + this.handshakes.size >= VSOCK_MAX_CONNECTIONS) {
      this.queueRst(h.dstPort, h.srcPort);
      return;
    }
    const fd = VsockBackend.connect(`${this.socketPath}_${h.dstPort}`);
    if (fd < 0) {
      this.queueRst(h.dstPort, h.srcPort);
      return;
    }
    const c = this.addConn(fd, h.dstPort, h.srcPort, false, ConnState.Established);
    c.peerBufAlloc = h.bufAlloc;
    c.peerFwdCnt = h.fwdCnt;
    c.sendResponse = true;
    this.outbox.add(c);
  }

  /** The guest accepted a host-initiated connection: tell the client `OK <local port>`. */
  private hostConnected(c: Conn): void {
    const ok = new TextEncoder().encode(`OK ${c.localPort}\n`);
    const n = Number(libcNet.send(c.fd, ok, ok.length, MSG_DONTWAIT | MSG_NOSIGNAL));
    if (n !== ok.length) {
      this.closeConn(c, true); // a fresh socket that cannot take 20 bytes: the client is gone
      return;
    }
    c.state = ConnState.Established;
    if (c.toGuest !== null) this.outbox.add(c);
  }

  // -------------------------------------------------------------------------------------------------
  // Packets to the guest

  /** Fills receive chains with what is owed, RSTs first, then connections in turn. */
  private pumpRx(rx: SplitQueue, memory: GuestMemory): void {
    while (this.rsts.length > 0 || this.outbox.size > 0) {
      const chain = this.rxChain ?? this.popReceiveChain(rx);
      this.rxChain = null;
      if (chain === null) return;
      const room = totalLength(chain.writable) - HDR_SIZE;
      const packet = this.nextPacket(room);
      if (packet === null) {
        this.rxChain = chain; // nothing to send after all: keep the chain for later
        return;
      }
      const [hdrBufs, dataBufs] = splitBuffers(chain.writable, HDR_SIZE);
      scatter(memory, hdrBufs, packet.header);
      if (packet.payload) scatter(memory, dataBufs, packet.payload);
      rx.pushUsed(chain, HDR_SIZE + (packet.payload?.length ?? 0));
    }
  }

  private popReceiveChain(rx: SplitQueue): Chain | null {
    for (let chain = rx.pop(); chain !== null; chain = rx.pop()) {
      if (chain.error === null && chain.readable.length === 0 && totalLength(chain.writable) >= HDR_SIZE)
        return chain;
      this.count(VSOCK_BAD_CHAINS);
      rx.pushUsed(chain, 0);
    }
    return null;
  }

  private header(
    srcPort: number,
    dstPort: number,
    op: number,
    len: number,
    flags: number,
    fwdCnt: number,
  ): Uint8Array {
    const b = new Uint8Array(HDR_SIZE);
    const v = viewOf(b);
    v.setBigUint64(HDR.src_cid.offset, BigInt(VSOCK_HOST_CID), true);
    v.setBigUint64(HDR.dst_cid.offset, BigInt(this.cid), true);
    v.setUint32(HDR.src_port.offset, srcPort, true);
    v.setUint32(HDR.dst_port.offset, dstPort, true);
    v.setUint32(HDR.len.offset, len, true);
    v.setUint16(HDR.type.offset, VIRTIO_VSOCK_TYPE_STREAM, true);
    v.setUint16(HDR.op.offset, op, true);
    v.setUint32(HDR.flags.offset, flags, true);
    v.setUint32(HDR.buf_alloc.offset, VSOCK_CONN_BUFFER, true);
    v.setUint32(HDR.fwd_cnt.offset, fwdCnt, true);
    return b;
  }

  /** The next packet owed to the guest with at most `room` payload bytes, or null when none is. */
  private nextPacket(room: number): { header: Uint8Array; payload?: Uint8Array } | null {
    const r = this.rsts.shift();
    if (r) {
      this.count(VSOCK_RST_SENT);
      return { header: this.header(r[0], r[1], VIRTIO_VSOCK_OP_RST, 0, 0, 0) };
    }
    for (const c of this.outbox) {
      this.outbox.delete(c);
      const p = this.connPacket(c, room);
      if (p === null) continue;
      this.outbox.add(c); // to the back: connections take turns; it leaves when it owes nothing
      return p;
    }
    return null;
  }

  private connPacket(c: Conn, room: number): { header: Uint8Array; payload?: Uint8Array } | null {
    const control = (op: number, flags = 0) => {
      c.sentFwdCnt = c.fwdCnt;
      c.sendCreditUpdate = false;
      return { header: this.header(c.localPort, c.peerPort, op, 0, flags, c.fwdCnt) };
    };
    if (c.sendRequest) {
      c.sendRequest = false;
      return control(VIRTIO_VSOCK_OP_REQUEST);
    }
    if (c.sendResponse) {
      c.sendResponse = false;
      return control(VIRTIO_VSOCK_OP_RESPONSE);
    }
    if (c.state !== ConnState.Established) return null;
    if (c.toGuest !== null && (c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) === 0) {
      const n = Math.min(c.toGuest.length, this.credit(c), room);
      if (n > 0) {
        const payload = c.toGuest.subarray(0, n);
        c.toGuest = n === c.toGuest.length ? null : c.toGuest.subarray(n);
        c.txCnt = (c.txCnt + n) % U32;
        c.sentFwdCnt = c.fwdCnt;
        c.sendCreditUpdate = false;
        this.count(VSOCK_BYTES_TO_GUEST, n);
        return { header: this.header(c.localPort, c.peerPort, VIRTIO_VSOCK_OP_RW, n, 0, c.fwdCnt), payload };
      }
      if (this.credit(c) === 0 && !c.creditRequested) {
        c.creditRequested = true;
        c.sendCreditRequest = true;
      }
    }
    if (c.sendCreditUpdate) return control(VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    if (c.sendCreditRequest) {
      c.sendCreditRequest = false;
      return control(VIRTIO_VSOCK_OP_CREDIT_REQUEST);
    }
    if (c.hostEof && !c.sentShutdown && (c.toGuest === null || c.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV)) {
      c.sentShutdown = true;
      return control(VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_SEND);
    }
    return null;
  }

  /** Closes every connection and the listener, and removes the socket file. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.dropAll();
    libc.close(this.listener);
    try {
      unlinkSync(this.socketPath);
    } catch {
      // already gone
    }
  }
}

/**
 * Counter words of a vsock device's spec: VsockBackend's own (VSOCK_*) at the same positions, then
 * VSOCK_OPEN_CONNECTIONS (connections open now) and VSOCK_RESET_OWED (1: restored, the guest is owed
 * TRANSPORT_RESET), below the common words.
 */
export const VSOCK_OPEN_CONNECTIONS = 12;
export const VSOCK_RESET_OWED = 13;
