/**
 * vsock front-end and back-end on different threads, as in a VM: the test thread is the guest's driver
 * (it writes the rings and notifies through eventfds) and the host's clients (plain Unix sockets); a
 * Worker is the device (test/helpers/virtio-vsock-worker.ts), sleeping in poll(2) on the queue eventfds
 * and the back-end's own fds. A host client that stops reading fills its connection, and the worker keeps
 * serving another one meanwhile.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VSOCK_CONN_BUFFER, VSOCK_HOST_CID, VsockBackend } from "../../../devices/virtio/vsock.ts";
import { EAGAIN } from "../../../ffi/errno-names.ts";
import { errno, libc } from "../../../ffi/libc.ts";
import {
  AF_UNIX,
  libcNet,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  sockaddrUn,
} from "../../../ffi/libc-net.ts";
import {
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_VSOCK_HDR_LAYOUT,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_TYPE_STREAM,
} from "../../../ffi/virtio-layouts.ts";
import { EventFd } from "../../../src/sys/eventfd.ts";
import { waitUntil } from "../../helpers/guests.ts";
import { TestDriver } from "../../helpers/virtio-driver.ts";
import type { VsockWorkerStart } from "../../helpers/virtio-vsock-worker.ts";

const CID = 5;
const QUEUE = 64;
const HDR = VIRTIO_VSOCK_HDR_LAYOUT.fields;
const HDR_SIZE = VIRTIO_VSOCK_HDR_LAYOUT.size;
const RX_BUF = HDR_SIZE + 4096;
const RX_POSTED = 16;
const CHUNK = 32 * 1024;
/** Transmit packets posted before waiting for the device to take them (two descriptors each). */
const TX_BATCH = 8;
/** Transmit packets sent before B's data: one RESPONSE per connection. */
const RESPONSES = 2;

interface Packet {
  op: number;
  srcPort: number;
  dstPort: number;
  payload: string;
}

function recvNow(fd: number): Uint8Array | "eof" {
  const buf = new Uint8Array(1 << 20);
  const n = Number(libcNet.recv(fd, buf, buf.length, MSG_DONTWAIT));
  if (n === 0) return "eof";
  if (n < 0) return errno() === EAGAIN ? new Uint8Array(0) : "eof";
  return buf.subarray(0, n);
}

test("a device worker serves vsock through eventfds and its own fds; a stalled host connection stalls nothing else", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-vsock-worker-"));
  const socket = join(dir, "v.sock");
  const notify = [0, 1, 2].map(() => EventFd.create());
  const irq = EventFd.create();
  const stop = EventFd.create();
  const d = new TestDriver(VsockBackend.deviceInfo(CID, QUEUE), (q) => notify[q]!.write());
  const worker = new Worker(join(import.meta.dir, "..", "..", "helpers", "virtio-vsock-worker.ts"));
  const messages: { kind: string; rounds?: number }[] = [];
  worker.onmessage = (e) => messages.push(e.data);
  const clients: number[] = [];
  try {
    d.init({ queueSize: QUEUE });
    const start: VsockWorkerStart = {
      state: d.state.buffer,
      regions: d.memory.descriptors,
      cid: CID,
      socket,
      queueSize: QUEUE,
      notifyFds: notify.map((e) => e.fd),
      irqFd: irq.fd,
      stopFd: stop.fd,
    };
    worker.postMessage(start);
    await waitUntil(() => messages.some((m) => m.kind === "ready"), "the device worker to start");

    // The guest's side: receive buffers, and a reader of the used ring (re-posting what it consumed).
    const posted = new Map<number, number>();
    const postRx = () => {
      const addr = d.alloc(RX_BUF);
      posted.set(d.post(0, [{ addr, len: RX_BUF, write: true }]), addr);
    };
    for (let i = 0; i < RX_POSTED; i++) postRx();
    d.write(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    let nextUsed = 0;
    const inbox: Packet[] = [];
    const collect = () => {
      let fresh = 0;
      while (nextUsed !== d.usedIdx(0)) {
        const e = d.usedElem(0, nextUsed);
        nextUsed = (nextUsed + 1) & 0xffff;
        const b = d.memory.read(posted.get(e.id)!, e.len);
        const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
        inbox.push({
          op: v.getUint16(HDR.op.offset, true),
          srcPort: v.getUint32(HDR.src_port.offset, true),
          dstPort: v.getUint32(HDR.dst_port.offset, true),
          payload: new TextDecoder().decode(b.subarray(HDR_SIZE)),
        });
        fresh++;
      }
      for (let i = 0; i < fresh; i++) postRx();
      if (fresh > 0) d.write(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    };
    const expectPacket = async (match: (p: Packet) => boolean, what: string): Promise<Packet> => {
      let hit: Packet | undefined;
      await waitUntil(() => {
        collect();
        const i = inbox.findIndex(match);
        if (i >= 0) hit = inbox.splice(i, 1)[0];
        return hit !== undefined;
      }, what);
      return hit!;
    };
    const send = (op: number, srcPort: number, dstPort: number, payload = new Uint8Array(0)) => {
      const h = d.alloc(HDR_SIZE);
      const v = new DataView(d.memory.slice(h, HDR_SIZE).buffer, h, HDR_SIZE);
      v.setBigUint64(HDR.src_cid.offset, BigInt(CID), true);
      v.setBigUint64(HDR.dst_cid.offset, BigInt(VSOCK_HOST_CID), true);
      v.setUint32(HDR.src_port.offset, srcPort, true);
      v.setUint32(HDR.dst_port.offset, dstPort, true);
      v.setUint32(HDR.len.offset, payload.length, true);
      v.setUint16(HDR.type.offset, VIRTIO_VSOCK_TYPE_STREAM, true);
      v.setUint16(HDR.op.offset, op, true);
      v.setUint32(HDR.buf_alloc.offset, 1 << 20, true);
      const descs = [{ addr: h, len: HDR_SIZE }];
      if (payload.length > 0) {
        const at = d.alloc(payload.length);
        d.memory.write(at, payload);
        descs.push({ addr: at, len: payload.length });
      }
      d.post(1, descs);
    };
    const connect = async (guestPort: number): Promise<{ fd: number; local: number }> => {
      const fd = libcNet.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const a = sockaddrUn(socket);
      expect(libcNet.connect(fd, a.addr, a.len)).toBe(0);
      clients.push(fd);
      const line = new TextEncoder().encode(`CONNECT ${guestPort}\n`);
      expect(Number(libcNet.send(fd, line, line.length, MSG_NOSIGNAL))).toBe(line.length);
      const req = await expectPacket(
        (p) => p.op === VIRTIO_VSOCK_OP_REQUEST && p.dstPort === guestPort,
        "REQUEST",
      );
      send(VIRTIO_VSOCK_OP_RESPONSE, guestPort, req.srcPort);
      d.write(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
      let ok = "";
      await waitUntil(() => {
        const r = recvNow(fd);
        if (r === "eof") throw new Error("EOF instead of OK");
        ok += new TextDecoder().decode(r);
        return ok.endsWith("\n");
      }, "the OK line");
      expect(ok).toBe(`OK ${req.srcPort}\n`);
      return { fd, local: req.srcPort };
    };

    const a = await connect(5000);
    const b = await connect(5001);
    // B's host side never reads: the guest sends B a full window's worth (what its credit allows).
    let sentB = 0;
    while (sentB < VSOCK_CONN_BUFFER) {
      for (let i = 0; i < TX_BATCH && sentB < VSOCK_CONN_BUFFER; i++) {
        send(VIRTIO_VSOCK_OP_RW, 5001, b.local, new Uint8Array(CHUNK).fill(0x42));
        sentB += CHUNK;
      }
      d.write(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
      // The device takes them all (two RESPONSEs went first): the ring is free for the next batch.
      const taken = RESPONSES + sentB / CHUNK;
      await waitUntil(() => d.usedIdx(1) === taken, `${taken} transmit chains taken`);
    }
    // A still works both ways while B is stuck.
    const ping = new TextEncoder().encode("ping");
    expect(Number(libcNet.send(a.fd, ping, ping.length, MSG_NOSIGNAL))).toBe(4);
    const got = await expectPacket((p) => p.op === VIRTIO_VSOCK_OP_RW && p.srcPort === a.local, "A's bytes");
    expect(got.payload).toBe("ping");
    send(VIRTIO_VSOCK_OP_RW, 5000, a.local, new TextEncoder().encode("pong"));
    d.write(VIRTIO_MMIO_QUEUE_NOTIFY, 1);
    let back = "";
    await waitUntil(() => {
      const r = recvNow(a.fd);
      if (r !== "eof") back += new TextDecoder().decode(r);
      return back.length >= 4;
    }, "A's answer at the host");
    expect(back).toBe("pong");
    // Now B's host reads: every byte the guest sent arrives.
    let drained = 0;
    await waitUntil(() => {
      const r = recvNow(b.fd);
      if (r !== "eof") drained += r.length;
      return drained >= sentB;
    }, "B drained");
    expect(drained).toBe(sentB);
    expect(irq.read()).toBeGreaterThan(0n);

    stop.write();
    await waitUntil(() => messages.some((m) => m.kind === "stopped"), "the device worker to stop");
    // Closing the back-end closed its host sockets: the clients see EOF.
    await waitUntil(() => recvNow(a.fd) === "eof", "EOF at A");
  } finally {
    worker.terminate();
    for (const fd of clients) libc.close(fd);
    d.close();
    for (const e of [...notify, irq, stop]) e.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
