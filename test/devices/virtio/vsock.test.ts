/**
 * virtio-vsock with the hybrid Unix-socket host side, driven by a TypeScript "guest" through the
 * transport and split rings in real guest memory, with real Unix sockets on the host side: the
 * `CONNECT <port>` handshake and bytes both ways; a guest connecting to `<socket>_P`; credit exhaustion
 * and a host that stops reading (other connections keep working); reset closing host sockets; the
 * TRANSPORT_RESET event; hostile packets from a seeded generator.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SplitQueue } from "../../../devices/virtio/queue.ts";
import {
  VSOCK_BAD_PACKETS,
  VSOCK_CONN_BUFFER,
  VSOCK_CREDIT_LOW_WATER,
  VSOCK_CREDIT_VIOLATIONS,
  VSOCK_EVENT_QUEUE,
  VSOCK_FIRST_LOCAL_PORT,
  VSOCK_HOST_CID,
  VSOCK_MAX_CONNECTIONS,
  VSOCK_RX_QUEUE,
  VSOCK_TX_QUEUE,
  VsockBackend,
} from "../../../devices/virtio/vsock.ts";
import { EAGAIN } from "../../../ffi/errno-names.ts";
import {
  errno,
  libc,
  POLLFD_EVENTS,
  POLLFD_FD,
  POLLFD_REVENTS,
  POLLFD_SIZE,
  POLLIN,
} from "../../../ffi/libc.ts";
import {
  AF_UNIX,
  libcNet,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  sockaddrUn,
} from "../../../ffi/libc-net.ts";
import {
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_STATUS,
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
} from "../../../ffi/virtio-layouts.ts";
import { BunvmmError } from "../../../src/errors.ts";
import { waitUntil } from "../../helpers/guests.ts";
import { Rng } from "../../helpers/rng.ts";
import { TestDriver } from "../../helpers/virtio-driver.ts";

const CID = 3;
const HDR = VIRTIO_VSOCK_HDR_LAYOUT.fields;
const HDR_SIZE = VIRTIO_VSOCK_HDR_LAYOUT.size;
const RX_BUF = HDR_SIZE + 4096;
const QUEUE = 64;
/** Connections opened each way in the many-connections test. */
const CONNECTIONS = 40;
/** The guest's receive buffer per connection, as it advertises it. */
const GUEST_BUF = 65536;

interface Packet {
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
  payload: Uint8Array;
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "bunvmm-vsock-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// Host side: plain Unix sockets

function unixConnect(path: string): number {
  const fd = libcNet.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const a = sockaddrUn(path);
  if (libcNet.connect(fd, a.addr, a.len) !== 0) throw new Error(`connect ${path}: errno ${errno()}`);
  return fd;
}

/** A listening Unix socket; non-blocking when `nonBlocking` (accept then returns -1 when nobody waits). */
function unixListen(path: string, nonBlocking = false): number {
  const fd = libcNet.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonBlocking ? SOCK_NONBLOCK : 0), 0);
  const a = sockaddrUn(path);
  if (libcNet.bind(fd, a.addr, a.len) !== 0 || libcNet.listen(fd, 8) !== 0) throw new Error(`listen ${path}`);
  return fd;
}

function sendAll(fd: number, bytes: Uint8Array | string): void {
  const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const n = Number(libcNet.send(fd, b, b.length, MSG_NOSIGNAL));
  if (n !== b.length) throw new Error(`send: ${n} of ${b.length}, errno ${errno()}`);
}

/** What is readable now: bytes, "eof", or an empty array when nothing is waiting. */
function recvNow(fd: number, max = 1 << 20): Uint8Array | "eof" {
  const buf = new Uint8Array(max);
  const n = Number(libcNet.recv(fd, buf, max, MSG_DONTWAIT));
  if (n === 0) return "eof";
  if (n < 0) {
    if (errno() === EAGAIN) return new Uint8Array(0);
    return "eof"; // reset by the peer
  }
  return buf.subarray(0, n);
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

// ---------------------------------------------------------------------------------------------------
// Guest side: the TypeScript driver

class Rig {
  readonly vs: VsockBackend;
  readonly d: TestDriver;
  readonly queues: SplitQueue[];
  readonly socket: string;
  private readonly posted = new Map<number, number>();
  private nextUsed = 0;
  private readonly pollBuf = new Uint8Array(POLLFD_SIZE * 2048);
  /** Every packet the guest received, in order. */
  readonly received: Packet[] = [];

  constructor() {
    this.socket = join(dir, "v.sock");
    this.vs = new VsockBackend({ cid: CID, socket: this.socket, queueSize: QUEUE });
    this.d = new TestDriver(this.vs.info);
    this.d.init({ queueSize: QUEUE });
    this.queues = [0, 1, 2].map((q) => this.d.queue(q));
  }

  postRx(count: number): void {
    for (let i = 0; i < count; i++) {
      const addr = this.d.alloc(RX_BUF);
      this.posted.set(this.d.post(VSOCK_RX_QUEUE, [{ addr, len: RX_BUF, write: true }]), addr);
    }
  }

  /** Sends one packet from the guest (header and payload as two descriptors) and lets the device run. */
  send(p: Partial<Packet> & { op: number }, payload?: Uint8Array | string): void {
    const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    const h = this.d.alloc(HDR_SIZE);
    const v = new DataView(this.d.memory.slice(h, HDR_SIZE).buffer, h, HDR_SIZE);
    v.setBigUint64(HDR.src_cid.offset, p.srcCid ?? BigInt(CID), true);
    v.setBigUint64(HDR.dst_cid.offset, p.dstCid ?? BigInt(VSOCK_HOST_CID), true);
    v.setUint32(HDR.src_port.offset, p.srcPort ?? 0, true);
    v.setUint32(HDR.dst_port.offset, p.dstPort ?? 0, true);
    v.setUint32(HDR.len.offset, p.len ?? data?.length ?? 0, true);
    v.setUint16(HDR.type.offset, p.type ?? VIRTIO_VSOCK_TYPE_STREAM, true);
    v.setUint16(HDR.op.offset, p.op, true);
    v.setUint32(HDR.flags.offset, p.flags ?? 0, true);
    v.setUint32(HDR.buf_alloc.offset, p.bufAlloc ?? GUEST_BUF, true);
    v.setUint32(HDR.fwd_cnt.offset, p.fwdCnt ?? 0, true);
    const descs = [{ addr: h, len: HDR_SIZE }];
    if (data && data.length > 0) {
      const at = this.d.alloc(data.length);
      this.d.memory.write(at, data);
      descs.push({ addr: at, len: data.length });
    }
    this.d.post(VSOCK_TX_QUEUE, descs);
    this.vs.processQueue(this.queues[VSOCK_TX_QUEUE]!, this.d.memory, this.queues);
    this.collect();
  }

  /** One round of the worker's loop: poll the back-end's fds without waiting, serve what is ready. */
  pump(): void {
    const reqs = this.vs.pollRequests();
    const v = new DataView(this.pollBuf.buffer);
    reqs.forEach((r, i) => {
      v.setInt32(i * POLLFD_SIZE + POLLFD_FD, r.fd, true);
      v.setInt16(i * POLLFD_SIZE + POLLFD_EVENTS, r.events, true);
      v.setInt16(i * POLLFD_SIZE + POLLFD_REVENTS, 0, true);
    });
    libc.poll(this.pollBuf, reqs.length, 0);
    reqs.forEach((r, i) => {
      const revents = v.getInt16(i * POLLFD_SIZE + POLLFD_REVENTS, true);
      if (revents !== 0) this.vs.onPoll(r.fd, revents, this.queues, this.d.memory);
    });
    this.vs.processQueue(this.queues[VSOCK_RX_QUEUE]!, this.d.memory, this.queues);
    this.collect();
  }

  /** Reads new used elements of the receive queue into `received`, and re-posts that many buffers. */
  collect(): void {
    let fresh = 0;
    while (this.nextUsed !== this.d.usedIdx(VSOCK_RX_QUEUE)) {
      const e = this.d.usedElem(VSOCK_RX_QUEUE, this.nextUsed);
      this.nextUsed = (this.nextUsed + 1) & 0xffff;
      const addr = this.posted.get(e.id)!;
      const b = this.d.memory.read(addr, e.len);
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      this.received.push({
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
        payload: b.slice(HDR_SIZE),
      });
      fresh++;
    }
    if (fresh > 0) this.postRx(fresh);
  }

  /** Pumps until a received packet matches; returns it (removed from `received`). */
  async expectPacket(match: (p: Packet) => boolean, what: string): Promise<Packet> {
    let hit: Packet | undefined;
    await waitUntil(() => {
      this.pump();
      const i = this.received.findIndex(match);
      if (i >= 0) hit = this.received.splice(i, 1)[0];
      return hit !== undefined;
    }, what);
    return hit!;
  }

  /** Pumps until `fd` has given `count` bytes; returns them. */
  async readHost(fd: number, count: number, what: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let got = 0;
    await waitUntil(() => {
      this.pump();
      const r = recvNow(fd);
      if (r === "eof") throw new Error(`${what}: EOF after ${got} bytes`);
      if (r.length > 0) {
        parts.push(r.slice());
        got += r.length;
      }
      return got >= count;
    }, what);
    return Buffer.concat(parts);
  }

  close(): void {
    this.vs.close();
    this.d.close();
  }
}

/** A host-initiated connection through the handshake; returns the client fd and the two ports. */
async function hostConnect(rig: Rig, guestPort: number, early = ""): Promise<{ fd: number; local: number }> {
  const fd = unixConnect(rig.socket);
  sendAll(fd, `CONNECT ${guestPort}\n${early}`);
  const req = await rig.expectPacket(
    (p) => p.op === VIRTIO_VSOCK_OP_REQUEST && p.dstPort === guestPort,
    "OP_REQUEST to the guest",
  );
  expect(req.srcCid).toBe(BigInt(VSOCK_HOST_CID));
  expect(req.dstCid).toBe(BigInt(CID));
  expect(req.srcPort).toBeGreaterThanOrEqual(VSOCK_FIRST_LOCAL_PORT);
  rig.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: guestPort, dstPort: req.srcPort });
  const ok = await rig.readHost(fd, `OK ${req.srcPort}\n`.length, "the OK line");
  expect(text(ok)).toBe(`OK ${req.srcPort}\n`);
  return { fd, local: req.srcPort };
}

/** Guest data on a connection, concatenated, until `count` bytes came (packets removed). */
async function guestRead(rig: Rig, local: number, guestPort: number, count: number): Promise<string> {
  let out = "";
  await waitUntil(() => {
    rig.pump();
    for (let i = 0; i < rig.received.length; ) {
      const p = rig.received[i]!;
      if (p.op === VIRTIO_VSOCK_OP_RW && p.srcPort === local && p.dstPort === guestPort) {
        out += text(p.payload);
        rig.received.splice(i, 1);
      } else i++;
    }
    return out.length >= count;
  }, `${count} bytes at the guest`);
  return out;
}

describe("virtio-vsock, hybrid Unix-socket host side", () => {
  test("config space holds the guest CID; bad CIDs and a socket path in use are refused", () => {
    const rig = new Rig();
    try {
      expect(rig.d.read(VIRTIO_MMIO_CONFIG, 4)).toBe(CID);
      expect(rig.d.read(VIRTIO_MMIO_CONFIG + 4, 4)).toBe(0);
      expect(() => new VsockBackend({ cid: 2, socket: join(dir, "x.sock") })).toThrow(BunvmmError);
      expect(() => new VsockBackend({ cid: CID, socket: rig.socket })).toThrow(
        `vsock socket path ${rig.socket} is in use: another VM listens on it`,
      );
    } finally {
      rig.close();
    }
    // The socket file of a closed back-end is gone; a listener bound beforehand is taken over.
    const listenerFd = VsockBackend.listen(rig.socket);
    const again = new VsockBackend({ cid: CID, socket: rig.socket, listenerFd });
    const client = unixConnect(rig.socket);
    expect(again.pollRequests()[0]).toEqual({ fd: listenerFd, events: POLLIN });
    again.close();
    libc.close(client);
  });

  test("host-initiated: CONNECT handshake, OK <port>, bytes both ways, early bytes kept", async () => {
    const rig = new Rig();
    try {
      rig.postRx(8);
      const { fd, local } = await hostConnect(rig, 5000, "early ");
      sendAll(fd, "hello guest");
      expect(await guestRead(rig, local, 5000, "early hello guest".length)).toBe("early hello guest");
      rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: local }, "hello host");
      expect(text(await rig.readHost(fd, 10, "guest bytes at the host"))).toBe("hello host");
      // A handshake line that is not CONNECT closes the client.
      const bad = unixConnect(rig.socket);
      sendAll(bad, "HELLO 1\n");
      await waitUntil(() => {
        rig.pump();
        return recvNow(bad) === "eof";
      }, "the bad client closed");
      // Nobody listens on the guest port: RST, and the client sees EOF.
      const refused = unixConnect(rig.socket);
      sendAll(refused, "CONNECT 5001\n");
      const req = await rig.expectPacket(
        (p) => p.op === VIRTIO_VSOCK_OP_REQUEST && p.dstPort === 5001,
        "REQUEST",
      );
      rig.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 5001, dstPort: req.srcPort });
      await waitUntil(() => {
        rig.pump();
        return recvNow(refused) === "eof";
      }, "the refused client closed");
      expect(rig.vs.connectionCount).toBe(1);
      for (const f of [fd, bad, refused]) libc.close(f);
    } finally {
      rig.close();
    }
  });

  test("guest-initiated: REQUEST to host port P connects to <socket>_P; no listener gets RST", async () => {
    const rig = new Rig();
    const listener = unixListen(`${join(dir, "v.sock")}_6000`);
    try {
      rig.postRx(8);
      rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 777, dstPort: 6000 });
      const resp = await rig.expectPacket((p) => p.op === VIRTIO_VSOCK_OP_RESPONSE, "RESPONSE");
      expect([resp.srcPort, resp.dstPort]).toEqual([6000, 777]);
      expect(resp.bufAlloc).toBe(VSOCK_CONN_BUFFER);
      const host = libcNet.accept4(listener, null, null, SOCK_CLOEXEC);
      expect(host).toBeGreaterThanOrEqual(0);
      rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 777, dstPort: 6000 }, "from the guest");
      expect(text(await rig.readHost(host, 14, "guest bytes"))).toBe("from the guest");
      sendAll(host, "from the host");
      expect(await guestRead(rig, 6000, 777, 13)).toBe("from the host");
      // The guest shuts down its sending side: the host reads EOF.
      rig.send({
        op: VIRTIO_VSOCK_OP_SHUTDOWN,
        srcPort: 777,
        dstPort: 6000,
        flags: VIRTIO_VSOCK_SHUTDOWN_SEND,
      });
      await waitUntil(() => recvNow(host) === "eof", "EOF at the host");
      // The host closes: SHUTDOWN(SEND) to the guest; the guest's full shutdown is answered with RST.
      libc.close(host);
      const sd = await rig.expectPacket((p) => p.op === VIRTIO_VSOCK_OP_SHUTDOWN, "SHUTDOWN from the host");
      expect(sd.flags).toBe(VIRTIO_VSOCK_SHUTDOWN_SEND);
      rig.send({
        op: VIRTIO_VSOCK_OP_SHUTDOWN,
        srcPort: 777,
        dstPort: 6000,
        flags: VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV,
      });
      await rig.expectPacket((p) => p.op === VIRTIO_VSOCK_OP_RST && p.dstPort === 777, "RST after SHUTDOWN");
      expect(rig.vs.connectionCount).toBe(0);

      rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 778, dstPort: 6001 });
      const rst = await rig.expectPacket((p) => p.op === VIRTIO_VSOCK_OP_RST, "RST for a missing listener");
      expect([rst.srcPort, rst.dstPort]).toEqual([6001, 778]);
    } finally {
      libc.close(listener);
      rig.close();
    }
  });

  test("many connections at once, both directions, each with its own bytes", async () => {
    const rig = new Rig();
    const listener = unixListen(`${rig.socket}_6100`);
    const fds: number[] = [];
    try {
      rig.postRx(32);
      const hostSide: { fd: number; local: number; port: number }[] = [];
      for (let i = 0; i < CONNECTIONS; i++) {
        const c = await hostConnect(rig, 7000 + i);
        fds.push(c.fd);
        hostSide.push({ ...c, port: 7000 + i });
      }
      const guestSide: { fd: number; port: number }[] = [];
      for (let i = 0; i < CONNECTIONS; i++) {
        rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 9000 + i, dstPort: 6100 });
        await rig.expectPacket(
          (p) => p.op === VIRTIO_VSOCK_OP_RESPONSE && p.dstPort === 9000 + i,
          "RESPONSE",
        );
        const fd = libcNet.accept4(listener, null, null, SOCK_CLOEXEC);
        expect(fd).toBeGreaterThanOrEqual(0);
        fds.push(fd);
        guestSide.push({ fd, port: 9000 + i });
      }
      expect(rig.vs.connectionCount).toBe(2 * CONNECTIONS);
      // Every host socket writes at once; every guest port gets exactly its own bytes.
      for (const c of hostSide) sendAll(c.fd, `to guest port ${c.port};`);
      for (const c of guestSide) sendAll(c.fd, `to guest port ${c.port};`);
      for (const c of hostSide) {
        const want = `to guest port ${c.port};`;
        expect(await guestRead(rig, c.local, c.port, want.length)).toBe(want);
      }
      for (const c of guestSide) {
        const want = `to guest port ${c.port};`;
        expect(await guestRead(rig, 6100, c.port, want.length)).toBe(want);
      }
      // And the other way, all sent before any is read.
      for (const c of hostSide)
        rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: c.port, dstPort: c.local }, `from ${c.port}`);
      for (const c of guestSide)
        rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: c.port, dstPort: 6100 }, `from ${c.port}`);
      for (const c of [...hostSide, ...guestSide]) {
        const want = `from ${c.port}`;
        expect(text(await rig.readHost(c.fd, want.length, `bytes at host socket for ${c.port}`))).toBe(want);
      }
    } finally {
      for (const fd of fds) libc.close(fd);
      libc.close(listener);
      rig.close();
    }
  });

  test("host -> guest respects the guest's credit: CREDIT_REQUEST at zero, more after CREDIT_UPDATE", async () => {
    const rig = new Rig();
    try {
      rig.postRx(16);
      const { fd, local } = await hostConnect(rig, 5000);
      // The guest advertises only 1000 bytes.
      rig.send({
        op: VIRTIO_VSOCK_OP_CREDIT_UPDATE,
        srcPort: 5000,
        dstPort: local,
        bufAlloc: 1000,
        fwdCnt: 0,
      });
      sendAll(fd, new Uint8Array(3000).fill(0x61));
      expect((await guestRead(rig, local, 5000, 1000)).length).toBe(1000);
      await rig.expectPacket((p) => p.op === VIRTIO_VSOCK_OP_CREDIT_REQUEST, "CREDIT_REQUEST");
      // No credit, no data: a few more rounds bring nothing.
      for (let i = 0; i < 20; i++) rig.pump();
      expect(rig.received.some((p) => p.op === VIRTIO_VSOCK_OP_RW)).toBe(false);
      rig.send({
        op: VIRTIO_VSOCK_OP_CREDIT_UPDATE,
        srcPort: 5000,
        dstPort: local,
        bufAlloc: 1000,
        fwdCnt: 1000,
      });
      expect((await guestRead(rig, local, 5000, 1000)).length).toBe(1000);
      rig.send({
        op: VIRTIO_VSOCK_OP_CREDIT_UPDATE,
        srcPort: 5000,
        dstPort: local,
        bufAlloc: 1000,
        fwdCnt: 2000,
      });
      expect((await guestRead(rig, local, 5000, 1000)).length).toBe(1000);
      libc.close(fd);
    } finally {
      rig.close();
    }
  });

  test("a host that stops reading stalls only its own connection; credit comes back when it reads", async () => {
    const rig = new Rig();
    try {
      rig.postRx(16);
      const a = await hostConnect(rig, 5000);
      const b = await hostConnect(rig, 5001);
      // The guest sends on A as long as the device's credit allows; the host does not read A.
      const chunk = new Uint8Array(32 * 1024).fill(0x62);
      let sent = 0;
      let fwd = 0;
      const creditLeft = () => VSOCK_CONN_BUFFER - (sent - fwd);
      for (let round = 0; round < 200 && creditLeft() > 0; round++) {
        const n = Math.min(chunk.length, creditLeft());
        rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: a.local }, chunk.subarray(0, n));
        sent += n;
        rig.pump();
        for (const p of rig.received) if (p.srcPort === a.local) fwd = Math.max(fwd, p.fwdCnt);
      }
      expect(creditLeft()).toBe(0); // the device's buffer and the socket are full
      expect(rig.vs.counter(VSOCK_CREDIT_VIOLATIONS)).toBe(0);
      // B still works both ways.
      rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5001, dstPort: b.local }, "b-data");
      expect(text(await rig.readHost(b.fd, 6, "B at the host"))).toBe("b-data");
      sendAll(b.fd, "b-back");
      expect(await guestRead(rig, b.local, 5001, 6)).toBe("b-back");
      // The host drains A: every byte arrives and a CREDIT_UPDATE reopens the window.
      rig.received.length = 0;
      const drained = await rig.readHost(a.fd, sent, "A drained");
      expect(drained.length).toBe(sent);
      const upd = await rig.expectPacket(
        (p) => p.srcPort === a.local && p.op === VIRTIO_VSOCK_OP_CREDIT_UPDATE,
        "CREDIT_UPDATE after the drain",
      );
      expect(VSOCK_CONN_BUFFER - (sent - upd.fwdCnt)).toBeGreaterThanOrEqual(VSOCK_CREDIT_LOW_WATER);
      // A guest that ignores the credit has its connection reset.
      const big = new Uint8Array(60 * 1024);
      let resets = 0;
      for (let i = 0; i < 10 && resets === 0; i++) {
        rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5001, dstPort: b.local, fwdCnt: 0 }, big);
        resets = rig.vs.counter(VSOCK_CREDIT_VIOLATIONS);
      }
      // B's host socket is read by nobody here, so its buffer fills and the excess is a violation.
      expect(resets).toBe(1);
      await rig.expectPacket((p) => p.op === VIRTIO_VSOCK_OP_RST && p.srcPort === b.local, "RST for B");
      libc.close(a.fd);
      libc.close(b.fd);
    } finally {
      rig.close();
    }
  });

  test("a device reset closes every host socket; transportReset posts TRANSPORT_RESET", async () => {
    const rig = new Rig();
    const listener = unixListen(`${rig.socket}_7000`);
    try {
      rig.postRx(8);
      const a = await hostConnect(rig, 5000);
      rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 900, dstPort: 7000 });
      await rig.expectPacket((p) => p.op === VIRTIO_VSOCK_OP_RESPONSE, "RESPONSE");
      const g = libcNet.accept4(listener, null, null, SOCK_CLOEXEC);
      expect(rig.vs.connectionCount).toBe(2);
      rig.d.write(VIRTIO_MMIO_STATUS, 0);
      rig.vs.processQueue(rig.queues[VSOCK_TX_QUEUE]!, rig.d.memory, rig.queues);
      expect(rig.vs.connectionCount).toBe(0);
      expect(recvNow(a.fd)).toBe("eof");
      expect(recvNow(g)).toBe("eof");

      // After a snapshot restore: connections dropped, the event tells the guest.
      const d = rig.d;
      d.init({ queueSize: QUEUE });
      const ev = d.alloc(4);
      d.memory.write(ev, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
      d.post(VSOCK_EVENT_QUEUE, [{ addr: ev, len: 4, write: true }]);
      expect(rig.vs.transportReset(rig.queues[VSOCK_EVENT_QUEUE]!, d.memory)).toBe(true);
      expect(d.usedElem(VSOCK_EVENT_QUEUE, 0).len).toBe(4);
      expect(d.memory.readU32(ev)).toBe(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
      // With no event buffer posted, the event waits for one.
      expect(rig.vs.transportReset(rig.queues[VSOCK_EVENT_QUEUE]!, d.memory)).toBe(false);
      const ev2 = d.alloc(4);
      d.memory.write(ev2, new Uint8Array([0xff, 0xff, 0xff, 0xff]));
      d.post(VSOCK_EVENT_QUEUE, [{ addr: ev2, len: 4, write: true }]);
      rig.vs.processQueue(rig.queues[VSOCK_EVENT_QUEUE]!, d.memory, rig.queues);
      expect(d.usedIdx(VSOCK_EVENT_QUEUE)).toBe(2);
      expect(d.memory.readU32(ev2)).toBe(VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
      libc.close(a.fd);
      libc.close(g);
    } finally {
      libc.close(listener);
      rig.close();
    }
  });

  test("hostile packets (seeded) leave the back-end healthy and its queues bounded", async () => {
    const rig = new Rig();
    const listener = unixListen(`${rig.socket}_8000`, true);
    try {
      rig.postRx(8);
      const seed = 0x76736f63;
      const rng = new Rng(seed);
      const ports = [1, 8000, 8001, VSOCK_FIRST_LOCAL_PORT, 0xffff_ffff];
      for (let i = 0; i < 600; i++) {
        const payload = new Uint8Array(rng.int(3) === 0 ? rng.int(200) : 0);
        rig.send(
          {
            op: rng.int(10),
            srcCid: rng.int(8) === 0 ? BigInt(rng.int(5)) : BigInt(CID),
            dstCid: rng.int(8) === 0 ? 1n : BigInt(VSOCK_HOST_CID),
            srcPort: ports[rng.int(ports.length)]!,
            dstPort: ports[rng.int(ports.length)]!,
            len: rng.int(4) === 0 ? rng.int(2 ** 32) : payload.length,
            type: rng.int(6) === 0 ? rng.int(4) : VIRTIO_VSOCK_TYPE_STREAM,
            flags: rng.int(4),
            bufAlloc: rng.int(2 ** 32),
            fwdCnt: rng.int(2 ** 32),
          },
          payload,
        );
        // Accept whatever the guest managed to open, so connects do not pile up in the backlog.
        for (let k = 0; k < 4; k++) {
          const fd = libcNet.accept4(listener, null, null, SOCK_CLOEXEC);
          if (fd < 0) break;
          libc.close(fd);
        }
        if (i % 50 === 0) rig.pump();
      }
      for (let i = 0; i < 50; i++) rig.pump();
      expect(rig.vs.counter(VSOCK_BAD_PACKETS)).toBeGreaterThan(0);
      expect(rig.vs.connectionCount).toBeLessThanOrEqual(VSOCK_MAX_CONNECTIONS);
      // Still healthy: a fresh connection each way works.
      rig.received.length = 0;
      const { fd, local } = await hostConnect(rig, 4242);
      rig.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 4242, dstPort: local }, "ok");
      expect(text(await rig.readHost(fd, 2, "bytes after the storm"))).toBe("ok");
      rig.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 31337, dstPort: 8000 });
      await rig.expectPacket((p) => p.op === VIRTIO_VSOCK_OP_RESPONSE && p.dstPort === 31337, "RESPONSE");
      libc.close(fd);
    } finally {
      libc.close(listener);
      rig.close();
    }
  });
});
