/**
 * virtio-net on a real TAP inside a network namespace the test creates (addresses from TEST-NET-1,
 * 192.0.2.0/24, only on that TAP): a UDP datagram built by the TypeScript "guest" goes out through the
 * transmit queue to a UDP socket in the namespace, and the answer comes back through the receive queue;
 * mergeable buffers; frames waiting in the TAP while no receive buffers are posted; oversized and
 * hostile transmit chains; the one-line errors; and the C test guest (test/guests/virtio/net-driver.c)
 * doing the same exchange on real KVM. Each test's namespace is deleted even when it fails,
 * and the last test checks that none is left.
 */
import { toArrayBuffer } from "bun:ffi";
import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ACPI_SLEEP_CONTROL } from "../../../devices/acpi-power.ts";
import type { AccessSize } from "../../../devices/bus.ts";
import { VirtioMmioState, VirtioMmioTransport } from "../../../devices/virtio/mmio-transport.ts";
import {
  NET_BAD_CHAINS,
  NET_HDR_SIZE,
  NET_MAX_FRAME,
  NET_RX_DROPPED,
  NET_RX_FRAMES,
  NET_RX_QUEUE,
  NET_TX_ERRORS,
  NET_TX_FRAMES,
  NET_TX_MALFORMED,
  NET_TX_OVERSIZED,
  NET_TX_QUEUE,
  NetBackend,
  parseMac,
} from "../../../devices/virtio/net.ts";
import { SplitQueue } from "../../../devices/virtio/queue.ts";
import { createTap, deleteTap, Tap } from "../../../devices/virtio/tap.ts";
import { KVM_RUN_LAYOUT } from "../../../ffi/kvm-structs.ts";
import {
  libc,
  MAP_FAILED,
  MAP_SHARED,
  POLLFD_EVENTS,
  POLLFD_FD,
  POLLFD_SIZE,
  POLLIN,
  PROT_READ,
  PROT_WRITE,
} from "../../../ffi/libc.ts";
import {
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_SIZE,
  VIRTIO_NET_CONFIG_LAYOUT,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_V1_LAYOUT,
  VIRTIO_NET_S_LINK_UP,
} from "../../../ffi/virtio-layouts.ts";
import { FPU_FCW_RESET, MXCSR_RESET } from "../../../src/arch/x86_64/cpu-state.ts";
import { cpuidForVcpu } from "../../../src/arch/x86_64/cpuid.ts";
import { lapicWithLint } from "../../../src/arch/x86_64/lapic.ts";
import { ACPI_POWER_PORT, UNOWNED_MMIO_TEST_ADDRESS } from "../../../src/arch/x86_64/layout.ts";
import { loadLinux } from "../../../src/arch/x86_64/linux-boot.ts";
import { bootMsrs } from "../../../src/arch/x86_64/msrs.ts";
import { BunvmmError } from "../../../src/errors.ts";
import { EventFd } from "../../../src/sys/eventfd.ts";
import { nobodyScript, runAsNobody } from "../../helpers/as-nobody.ts";
import { cGuestElf } from "../../helpers/c-guest.ts";
import { waitUntil } from "../../helpers/guests.ts";
import { TestMachine } from "../../helpers/kvm-harness.ts";
import { leftoverNamespaces, type Netns, withNetns } from "../../helpers/netns.ts";
import { Rng } from "../../helpers/rng.ts";
import { TestDriver } from "../../helpers/virtio-driver.ts";
import { LineReader, parseUdp, udpFrame } from "../../helpers/virtio-net-frames.ts";
import type { NetWorkerStart } from "../../helpers/virtio-net-worker.ts";

const HOST_IP = "192.0.2.1";
const GUEST_IP = "192.0.2.2";
const GUEST_MAC = "02:00:5e:00:02:02";
const HOST_PORT = 5000;
const GUEST_PORT = 4000;
const RX_BUFFER = 2048;
const createdTaps: string[] = [];
/** The C guest's machine: RAM, where its transport sits, the power-off port, a bound on exits. */
const RAM = 64 << 20;
const KVM_BASE = UNOWNED_MMIO_TEST_ADDRESS;
const SLEEP_PORT = ACPI_POWER_PORT + ACPI_SLEEP_CONTROL;
const MAX_EXITS = 1_000_000;

function ipv4Number(ip: string): number {
  return ip.split(".").reduce((n, b) => n * 256 + Number(b), 0);
}

/** A UDP socket on the TAP's address that prints what it gets and answers "pong:" + it. */
const ECHO_SERVER = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("${HOST_IP}", ${HOST_PORT}))
s.settimeout(30)
print("ready", flush=True)
d, a = s.recvfrom(65535)
print("got", d.decode(), a[0], a[1], flush=True)
s.sendto(b"pong:" + d, a)
`;

/** Like ECHO_SERVER, then prints the next datagram as "echo <payload>". */
const ECHO_SERVER_TWICE = `${ECHO_SERVER}
d, a = s.recvfrom(65535)
print("echo", d.decode(), flush=True)
`;

/** Sends each argv word as one datagram to the guest. */
const SENDER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for w in sys.argv[1:]:
    s.sendto(w.encode(), ("${GUEST_IP}", ${GUEST_PORT}))
`;

interface Rig {
  ns: Netns;
  tapName: string;
  tapMac: string;
  net: NetBackend;
  d: TestDriver;
  rx: SplitQueue;
  tx: SplitQueue;
  /** Receive chains posted, by head: address and length. */
  posted: Map<number, { addr: number; len: number }>;
}

/** A namespace with a TAP (192.0.2.1/24, up, a permanent neighbour entry for the guest) and a device on it. */
async function withTapRig(fn: (rig: Rig) => Promise<void>, mtu = 1500): Promise<void> {
  await withNetns(async (ns) => {
    // No IPv6 on the namespace's links: no router solicitations or MLD reports among the frames.
    ns.run(["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns.run(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    const tapName = createTap({ netns: ns.name, address: `${HOST_IP}/24` });
    createdTaps.push(tapName);
    const tap = ns.enter(() => Tap.open(tapName, { mustExist: true }));
    const net = new NetBackend(tap, { mac: GUEST_MAC, mtu, queueSize: 16 });
    const d = new TestDriver(net.info);
    try {
      ns.run(["ip", "neigh", "replace", GUEST_IP, "lladdr", GUEST_MAC, "dev", tapName, "nud", "permanent"]);
      const tapMac = JSON.parse(ns.run(["ip", "-j", "link", "show", "dev", tapName]))[0].address as string;
      await fn({
        ns,
        tapName,
        tapMac,
        net,
        d,
        rx: d.queue(NET_RX_QUEUE),
        tx: d.queue(NET_TX_QUEUE),
        posted: new Map(),
      });
    } finally {
      net.close();
      d.close();
      // A test may have deleted it already; the namespace's deletion would take it anyway.
      if (Bun.spawnSync(["ip", "-n", ns.name, "link", "show", "dev", tapName]).exitCode === 0)
        deleteTap(tapName, ns.name);
    }
  });
}

function postRx(rig: Rig, count: number, len = RX_BUFFER): void {
  for (let i = 0; i < count; i++) {
    const addr = rig.d.alloc(len);
    rig.posted.set(rig.d.post(NET_RX_QUEUE, [{ addr, len, write: true }]), { addr, len });
  }
}

/** Posts one transmit chain: the header (zeroes unless given) then the frame, as two descriptors. */
function postTx(rig: Rig, frame: Uint8Array, header = new Uint8Array(NET_HDR_SIZE)): number {
  const h = rig.d.alloc(header.length);
  rig.d.memory.write(h, header);
  const f = rig.d.alloc(frame.length);
  rig.d.memory.write(f, frame);
  return rig.d.post(NET_TX_QUEUE, [
    { addr: h, len: header.length },
    { addr: f, len: frame.length },
  ]);
}

function guestUdp(rig: Rig, payload: Uint8Array | string, dstPort = HOST_PORT): Uint8Array {
  return udpFrame({
    srcMac: GUEST_MAC,
    dstMac: rig.tapMac,
    srcIp: GUEST_IP,
    dstIp: HOST_IP,
    srcPort: GUEST_PORT,
    dstPort,
    payload: typeof payload === "string" ? new TextEncoder().encode(payload) : payload,
  });
}

interface Received {
  numBuffers: number;
  frame: Uint8Array;
}

/**
 * Reads the used elements of the receive queue from `from` on and reassembles frames (num_buffers
 * elements each). Returns the frames and the next index.
 */
function receivedFrames(rig: Rig, from: number): { frames: Received[]; next: number } {
  const frames: Received[] = [];
  let i = from;
  const end = rig.d.usedIdx(NET_RX_QUEUE);
  while (i !== end) {
    const first = rig.d.usedElem(NET_RX_QUEUE, i);
    const buf = rig.posted.get(first.id)!;
    const head = rig.d.memory.read(buf.addr, first.len);
    const numBuffers = new DataView(head.buffer, head.byteOffset).getUint16(
      VIRTIO_NET_HDR_V1_LAYOUT.fields.num_buffers.offset,
      true,
    );
    const parts = [head];
    for (let k = 1; k < numBuffers; k++) {
      const e = rig.d.usedElem(NET_RX_QUEUE, i + k);
      parts.push(rig.d.memory.read(rig.posted.get(e.id)!.addr, e.len));
    }
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    frames.push({ numBuffers, frame: all.subarray(NET_HDR_SIZE) });
    i = (i + numBuffers) & 0xffff;
  }
  return { frames, next: i };
}

/** True when `fd` is readable now (poll with no wait). */
function readable(fd: number): boolean {
  const p = new Uint8Array(POLLFD_SIZE);
  const v = new DataView(p.buffer);
  v.setInt32(POLLFD_FD, fd, true);
  v.setInt16(POLLFD_EVENTS, POLLIN, true);
  return libc.poll(p, 1, 0) === 1;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

afterAll(() => {
  expect(leftoverNamespaces()).toEqual([]);
  const links = Bun.spawnSync(["ip", "-o", "link", "show"]).stdout.toString();
  for (const t of createdTaps) expect(links).not.toContain(`: ${t}:`);
});

describe("virtio-net on a TAP in a network namespace", () => {
  test("config space: MAC, link up, MTU; features as offered", async () => {
    await withTapRig(async ({ d }) => {
      const L = VIRTIO_NET_CONFIG_LAYOUT.fields;
      const mac = Array.from({ length: 6 }, (_, i) => d.read(VIRTIO_MMIO_CONFIG + L.mac.offset + i, 1));
      expect(mac).toEqual([...parseMac(GUEST_MAC)]);
      expect(d.read(VIRTIO_MMIO_CONFIG + L.status.offset, 2)).toBe(VIRTIO_NET_S_LINK_UP);
      expect(d.read(VIRTIO_MMIO_CONFIG + L.mtu.offset, 2)).toBe(1500);
      expect(d.deviceFeatures() & (1n << BigInt(VIRTIO_NET_F_MRG_RXBUF))).not.toBe(0n);
    });
  });

  test("a UDP datagram goes out through the TAP and the answer comes back in", async () => {
    await withTapRig(async (rig) => {
      const { ns, net, d, rx, tx } = rig;
      const server = ns.spawn(["python3", "-c", ECHO_SERVER]);
      try {
        const out = new LineReader(server.stdout as ReadableStream<Uint8Array>);
        await out.line(/^ready/, "the UDP server in the namespace");
        d.init();
        postRx(rig, 4);
        expect(net.processQueue(rx, d.memory)).toBe(false); // nothing from the TAP yet
        postTx(rig, guestUdp(rig, "ping"));
        expect(net.processQueue(tx, d.memory)).toBe(true);
        expect(d.usedElem(NET_TX_QUEUE, 0).len).toBe(0);
        expect(net.counter(NET_TX_FRAMES)).toBe(1);
        expect(await out.line(/^got /, "the datagram at the server")).toBe(
          `got ping ${GUEST_IP} ${GUEST_PORT}`,
        );

        let reply: Received | undefined;
        let next = 0;
        await waitUntil(() => {
          for (const fd of net.pollFds()) if (readable(fd)) net.onReadable(fd, [rx, tx], d.memory);
          const got = receivedFrames(rig, next);
          next = got.next;
          reply ??= got.frames.find((f) => parseUdp(f.frame)?.dstPort === GUEST_PORT);
          return reply !== undefined;
        }, "the answer in the receive queue");
        const udp = parseUdp(reply!.frame)!;
        expect(text(udp.payload)).toBe("pong:ping");
        expect(udp.srcPort).toBe(HOST_PORT);
        expect(reply!.numBuffers).toBe(1);
        expect(net.counter(NET_RX_DROPPED)).toBe(0);
      } finally {
        server.kill();
        await server.exited;
      }
    });
  });

  test("frames wait in the TAP while no receive buffers are posted, then all arrive in order", async () => {
    await withTapRig(async (rig) => {
      const { ns, net, d, rx, tx } = rig;
      d.init();
      ns.run(["python3", "-c", SENDER, "m0", "m1", "m2"]);
      const fd = net.tap.fd;
      await waitUntil(() => readable(fd), "a frame queued in the TAP");
      expect(net.onReadable(fd, [rx, tx], d.memory)).toBe(false);
      // One frame is held back; the TAP is no longer polled, so nothing more is read or dropped.
      expect(net.pollFds()).toEqual([]);
      expect(net.counter(NET_RX_FRAMES)).toBe(0);
      postRx(rig, 8);
      let next = 0;
      const payloads: string[] = [];
      await waitUntil(() => {
        if (net.pollFds().length === 0) net.processQueue(rx, d.memory);
        else for (const f of net.pollFds()) if (readable(f)) net.onReadable(f, [rx, tx], d.memory);
        const got = receivedFrames(rig, next);
        next = got.next;
        for (const f of got.frames) {
          const udp = parseUdp(f.frame);
          if (udp?.dstPort === GUEST_PORT) payloads.push(text(udp.payload));
        }
        return payloads.length >= 3;
      }, "the three datagrams");
      expect(payloads).toEqual(["m0", "m1", "m2"]);
      expect(net.counter(NET_RX_DROPPED)).toBe(0);
      expect(net.pollFds()).toEqual([fd]);
    });
  });

  test("before the driver is up one frame is held and the TAP is not polled; the driver's start drops it, counted", async () => {
    await withTapRig(async (rig) => {
      const { ns, net, d, rx, tx } = rig;
      ns.run(["python3", "-c", SENDER, "early"]);
      const fd = net.tap.fd;
      await waitUntil(() => readable(fd), "a frame queued in the TAP");
      expect(net.onReadable(fd, [rx, tx], d.memory)).toBe(false);
      expect(net.pollFds()).toEqual([]);
      d.init();
      postRx(rig, 4);
      net.processQueue(rx, d.memory);
      expect(net.counter(NET_RX_DROPPED)).toBe(1);
      expect(net.pollFds()).toEqual([fd]);
      ns.run(["python3", "-c", SENDER, "late"]);
      let next = 0;
      let got: Received | undefined;
      await waitUntil(() => {
        for (const f of net.pollFds()) if (readable(f)) net.onReadable(f, [rx, tx], d.memory);
        const r = receivedFrames(rig, next);
        next = r.next;
        got ??= r.frames.find((f) => parseUdp(f.frame)?.dstPort === GUEST_PORT);
        return got !== undefined;
      }, "the datagram sent after the driver started");
      expect(text(parseUdp(got!.frame)!.payload)).toBe("late");
    });
  });

  test("with MRG_RXBUF a frame spans several small buffers and num_buffers counts them", async () => {
    await withTapRig(async (rig) => {
      const { ns, net, d, rx, tx } = rig;
      d.init();
      const small = 256;
      postRx(rig, 12, small);
      const payload = "x".repeat(1000);
      ns.run(["python3", "-c", SENDER, payload]);
      let next = 0;
      let got: Received | undefined;
      await waitUntil(() => {
        for (const fd of net.pollFds()) if (readable(fd)) net.onReadable(fd, [rx, tx], d.memory);
        const r = receivedFrames(rig, next);
        next = r.next;
        got ??= r.frames.find((f) => parseUdp(f.frame)?.dstPort === GUEST_PORT);
        return got !== undefined;
      }, "the large datagram");
      const frameBytes = NET_HDR_SIZE + got!.frame.length;
      expect(got!.numBuffers).toBe(Math.ceil(frameBytes / small));
      expect(text(parseUdp(got!.frame)!.payload)).toBe(payload);
    });
  });

  test("without MRG_RXBUF a buffer too small for the frame comes back empty and the drop is counted", async () => {
    await withTapRig(async (rig) => {
      const { ns, net, d, rx, tx } = rig;
      d.init({ features: d.deviceFeatures() & ~(1n << BigInt(VIRTIO_NET_F_MRG_RXBUF)) });
      postRx(rig, 1, 256);
      ns.run(["python3", "-c", SENDER, "y".repeat(1000)]);
      await waitUntil(() => {
        for (const fd of net.pollFds()) if (readable(fd)) net.onReadable(fd, [rx, tx], d.memory);
        return net.counter(NET_RX_DROPPED) === 1;
      }, "the drop of the large frame");
      expect(d.usedIdx(NET_RX_QUEUE)).toBe(1);
      expect(d.usedElem(NET_RX_QUEUE, 0).len).toBe(0);
      postRx(rig, 1);
      ns.run(["python3", "-c", SENDER, "short"]);
      let next = 1;
      let got: Received | undefined;
      await waitUntil(() => {
        for (const fd of net.pollFds()) if (readable(fd)) net.onReadable(fd, [rx, tx], d.memory);
        const r = receivedFrames(rig, next);
        next = r.next;
        got ??= r.frames.find((f) => parseUdp(f.frame)?.dstPort === GUEST_PORT);
        return got !== undefined;
      }, "the short datagram");
      expect(got!.numBuffers).toBe(1);
      expect(text(parseUdp(got!.frame)!.payload)).toBe("short");
    });
  });

  test("receive chains with readable buffers or no room for the header come back empty, counted", async () => {
    await withTapRig(async (rig) => {
      const { ns, net, d, rx, tx } = rig;
      d.init();
      const r = d.alloc(64);
      d.post(NET_RX_QUEUE, [{ addr: r, len: 64 }]); // device-readable: not a receive buffer
      d.post(NET_RX_QUEUE, [{ addr: r, len: NET_HDR_SIZE - 1, write: true }]); // no room for the header
      postRx(rig, 2);
      ns.run(["python3", "-c", SENDER, "after the bad ones"]);
      let next = 0;
      let got: Received | undefined;
      await waitUntil(() => {
        for (const fd of net.pollFds()) if (readable(fd)) net.onReadable(fd, [rx, tx], d.memory);
        // The two refused chains come first in the used ring, with length 0.
        if (next === 0 && d.usedIdx(NET_RX_QUEUE) >= 2) next = 2;
        if (next === 0) return false;
        const found = receivedFrames(rig, next);
        next = found.next;
        got ??= found.frames.find((f) => parseUdp(f.frame)?.dstPort === GUEST_PORT);
        return got !== undefined;
      }, "the datagram in a good buffer");
      expect(d.usedElem(NET_RX_QUEUE, 0).len).toBe(0);
      expect(d.usedElem(NET_RX_QUEUE, 1).len).toBe(0);
      expect(net.counter(NET_BAD_CHAINS)).toBe(2);
      expect(text(parseUdp(got!.frame)!.payload)).toBe("after the bad ones");
    });
  });

  test("frames above the MTU and chains above the largest frame are refused and counted", async () => {
    await withTapRig(async (rig) => {
      const { net, d, tx } = rig;
      d.init();
      const ipRoom = 1500 - 20 - 8; // the largest UDP payload a 1500-byte MTU carries
      postTx(rig, guestUdp(rig, new Uint8Array(ipRoom)));
      postTx(rig, guestUdp(rig, new Uint8Array(ipRoom + 5))); // 1519 bytes: above MTU + 14 + 4
      const huge = new Uint8Array(NET_MAX_FRAME + 1);
      postTx(rig, huge);
      net.processQueue(tx, d.memory);
      expect(d.usedIdx(NET_TX_QUEUE)).toBe(3);
      for (let i = 0; i < 3; i++) expect(d.usedElem(NET_TX_QUEUE, i).len).toBe(0);
      expect(net.counter(NET_TX_FRAMES)).toBe(1);
      expect(net.counter(NET_TX_OVERSIZED)).toBe(2);
    });
  });

  test("hostile transmit chains are dropped and counted; the device keeps working", async () => {
    await withTapRig(async (rig) => {
      const { net, d, tx } = rig;
      const offered = d.deviceFeatures();
      d.init({
        features: offered & ~(1n << BigInt(VIRTIO_NET_F_HOST_TSO4)) & ~(1n << BigInt(VIRTIO_NET_F_CSUM)),
      });
      const short = d.alloc(5);
      d.post(NET_TX_QUEUE, [{ addr: short, len: 5 }]); // shorter than the header
      const w = d.alloc(64);
      d.post(NET_TX_QUEUE, [
        { addr: w, len: 32 },
        { addr: w + 32, len: 32, write: true },
      ]); // a writable buffer in a transmit chain
      const gso = new Uint8Array(NET_HDR_SIZE);
      gso[VIRTIO_NET_HDR_V1_LAYOUT.fields.gso_type.offset] = VIRTIO_NET_HDR_GSO_TCPV4;
      postTx(rig, guestUdp(rig, "tso"), gso); // TSO without HOST_TSO4
      const csum = new Uint8Array(NET_HDR_SIZE);
      csum[VIRTIO_NET_HDR_V1_LAYOUT.fields.flags.offset] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      postTx(rig, guestUdp(rig, "csum"), csum); // a partial checksum without CSUM
      net.processQueue(tx, d.memory);
      expect(d.usedIdx(NET_TX_QUEUE)).toBe(4);
      expect(net.counter(NET_TX_MALFORMED)).toBe(3);
      expect(net.counter(NET_BAD_CHAINS)).toBe(1);

      // Random headers and bytes, in batches the ring holds: every chain completes with length 0.
      const rng = new Rng(0x6e6574);
      const total = 240;
      let done = 4;
      for (let sent = 0; sent < total; ) {
        for (let b = 0; b < 8; b++, sent++) {
          const len = 1 + rng.int(300);
          const at = d.alloc(len);
          const bytes = d.memory.slice(at, len);
          for (let i = 0; i < len; i++) bytes[i] = rng.int(256);
          d.post(NET_TX_QUEUE, [{ addr: at, len }]);
        }
        net.processQueue(tx, d.memory);
        done += 8;
        expect(d.usedIdx(NET_TX_QUEUE)).toBe(done);
      }
      for (let i = 4; i < done; i++) expect(d.usedElem(NET_TX_QUEUE, i).len).toBe(0);
      const accounted = [NET_TX_FRAMES, NET_TX_MALFORMED, NET_TX_OVERSIZED, NET_TX_ERRORS, NET_BAD_CHAINS]
        .map((c) => net.counter(c))
        .reduce((a, b) => a + b, 0);
      expect(accounted).toBe(total + 4);
      const before = net.counter(NET_TX_FRAMES);
      postTx(rig, guestUdp(rig, "still alive"));
      net.processQueue(tx, d.memory);
      expect(net.counter(NET_TX_FRAMES)).toBe(before + 1);
    });
  });

  test("a TAP deleted while in use: the failure is recorded, the TAP no longer polled, frames counted", async () => {
    await withTapRig(async (rig) => {
      const { ns, net, d, rx, tx, tapName } = rig;
      d.init();
      postRx(rig, 2);
      expect(net.failure).toBeNull();
      ns.run(["ip", "link", "delete", "dev", tapName]);
      expect(net.processQueue(rx, d.memory)).toBe(false);
      expect(net.failure).toBe(`tap ${tapName} is gone: it was deleted while in use`);
      expect(net.pollFds()).toEqual([]);
      postTx(rig, guestUdp(rig, "into the void"));
      net.processQueue(tx, d.memory);
      expect(d.usedElem(NET_TX_QUEUE, 0).len).toBe(0);
      expect(net.counter(NET_TX_ERRORS)).toBe(1);
    });
  });

  test("the C test guest on real KVM sends a datagram, receives the answer and echoes it back", async () => {
    await withTapRig(async (rig) => {
      const { ns, net } = rig;
      const server = ns.spawn(["python3", "-c", ECHO_SERVER_TWICE]);
      const out = new LineReader(server.stdout as ReadableStream<Uint8Array>);
      const machine = TestMachine.create(RAM);
      const runSize = machine.kvm.getVcpuMmapSize();
      const runAddr = libc.mmap(0, runSize, PROT_READ | PROT_WRITE, MAP_SHARED, machine.vcpu.fd, 0);
      expect(BigInt(runAddr)).not.toBe(MAP_FAILED);
      try {
        await out.line(/^ready/, "the UDP server in the namespace");
        const mac = parseMac(GUEST_MAC);
        const elfPath = cGuestElf(["net-driver.c"], {
          VIRTIO_MMIO_BASE: KVM_BASE,
          HOST_IP: ipv4Number(HOST_IP),
          GUEST_IP: ipv4Number(GUEST_IP),
          HOST_PORT,
          GUEST_PORT,
          GUEST_MAC_HI: (mac[0]! << 8) | mac[1]!,
          GUEST_MAC_LO: ((mac[2]! << 24) | (mac[3]! << 16) | (mac[4]! << 8) | mac[5]!) >>> 0,
        });
        const code = Bun.spawnSync(["objdump", "-d", elfPath]).stdout.toString();
        expect(code).not.toMatch(/%xmm|%st\b|\bfld|\bfst/); // no SSE or x87 instruction anywhere
        const run = new DataView(toArrayBuffer(Number(runAddr), 0, runSize));
        const memory = machine.memory;
        const state = VirtioMmioState.create(net.info);
        const queues = [
          new SplitQueue(state, NET_RX_QUEUE, memory),
          new SplitQueue(state, NET_TX_QUEUE, memory),
        ];
        // No ioeventfd here: QueueNotify exits, and the front-end runs the back-end in-line.
        const transport = new VirtioMmioTransport(state.buffer, memory, (q) => {
          net.processQueue(queues[q]!, memory);
        });
        const boot = loadLinux(memory, {
          kernelImage: readFileSync(elfPath),
          format: "elf",
          cmdline: "",
          ramSize: RAM,
        });
        const { vcpu } = machine;
        vcpu.setCpuid2(cpuidForVcpu(machine.kvm.getSupportedCpuid(), 0, { maxVcpus: 1 }));
        vcpu.setMsrs(bootMsrs());
        vcpu.setLapic(lapicWithLint(vcpu.getLapic()));
        vcpu.setFpu(FPU_FCW_RESET, MXCSR_RESET);
        vcpu.setSregs(boot.bootSregsFrom(vcpu.getSregs()));
        vcpu.setRegs(boot.bootRegs);
        let poweredOff = false;
        let stoppedBy = "";
        for (let i = 0; i < MAX_EXITS && !poweredOff && !stoppedBy; i++) {
          const exit = machine.run();
          if (exit.kind === "io") {
            if (exit.out && exit.port === SLEEP_PORT) poweredOff = true;
          } else if (
            exit.kind === "mmio" &&
            exit.address >= KVM_BASE &&
            exit.address < KVM_BASE + VIRTIO_MMIO_SIZE
          ) {
            // The device worker's poll, in-line: frames waiting in the TAP go to the receive queue.
            for (const fd of net.pollFds()) if (readable(fd)) net.onReadable(fd, queues, memory);
            const offset = exit.address - KVM_BASE;
            const size = exit.len as AccessSize;
            if (exit.write) transport.write(offset, size, Number(exit.data & 0xffff_ffffn));
            else
              run.setBigUint64(
                KVM_RUN_LAYOUT.fields["mmio.data"].offset,
                BigInt(transport.read(offset, size)),
                true,
              );
          } else stoppedBy = JSON.stringify(exit);
        }
        const serial = machine.serialText();
        if (process.env.BUNVMM_SHOW_SERIAL) console.log(serial);
        expect(stoppedBy).toBe("");
        expect(poweredOff).toBe(true);
        for (const step of ["probe", "features", "mac", "queues", "tx", "rx", "echo"])
          expect(serial).toContain(`${step} ok\n`);
        expect(serial).toContain(`mac ${GUEST_MAC}\n`);
        expect(serial).toContain("reply: pong:hello from the C guest\n");
        expect(serial).toContain("DONE 0\n");
        expect(await out.line(/^got /, "the guest's datagram")).toBe(
          `got hello from the C guest ${GUEST_IP} ${GUEST_PORT}`,
        );
        expect(await out.line(/^echo /, "the guest's echo")).toBe("echo pong:hello from the C guest");
        expect(net.counter(NET_TX_FRAMES)).toBe(2);
        expect(state.badAccesses).toBe(0);
      } finally {
        libc.munmap(runAddr, runSize);
        machine.close();
        server.kill();
        await server.exited;
      }
    });
  });

  test("a device worker serves the queues and the TAP (opened on this thread, in the namespace) by fd", async () => {
    await withTapRig(async (base) => {
      const notify = [0, 1].map(() => EventFd.create());
      const irq = EventFd.create();
      const stop = EventFd.create();
      const d = new TestDriver(base.net.info, (q) => notify[q]!.write());
      const rig: Rig = {
        ...base,
        d,
        rx: d.queue(NET_RX_QUEUE),
        tx: d.queue(NET_TX_QUEUE),
        posted: new Map(),
      };
      const server = base.ns.spawn(["python3", "-c", ECHO_SERVER]);
      const out = new LineReader(server.stdout as ReadableStream<Uint8Array>);
      const worker = new Worker(join(import.meta.dir, "..", "..", "helpers", "virtio-net-worker.ts"));
      const messages: { kind: string; txFrames?: number; rxFrames?: number }[] = [];
      worker.onmessage = (e) => messages.push(e.data);
      try {
        await out.line(/^ready/, "the UDP server in the namespace");
        d.init();
        const start: NetWorkerStart = {
          state: d.state.buffer,
          regions: d.memory.descriptors,
          tapName: base.tapName,
          tapFd: base.net.tap.fd,
          mac: GUEST_MAC,
          queueSize: 16,
          notifyFds: notify.map((e) => e.fd),
          irqFd: irq.fd,
          stopFd: stop.fd,
        };
        worker.postMessage(start);
        await waitUntil(() => messages.some((m) => m.kind === "ready"), "the device worker to start");
        postRx(rig, 4);
        d.write(VIRTIO_MMIO_QUEUE_NOTIFY, NET_RX_QUEUE);
        postTx(rig, guestUdp(rig, "from a worker"));
        d.write(VIRTIO_MMIO_QUEUE_NOTIFY, NET_TX_QUEUE);
        expect(await out.line(/^got /, "the datagram at the server")).toBe(
          `got from a worker ${GUEST_IP} ${GUEST_PORT}`,
        );
        let reply: Received | undefined;
        let next = 0;
        await waitUntil(() => {
          const got = receivedFrames(rig, next);
          next = got.next;
          reply ??= got.frames.find((f) => parseUdp(f.frame)?.dstPort === GUEST_PORT);
          return reply !== undefined;
        }, "the answer, delivered by the worker");
        expect(text(parseUdp(reply!.frame)!.payload)).toBe("pong:from a worker");
        expect(irq.read()).toBeGreaterThan(0n);
        stop.write();
        await waitUntil(() => messages.some((m) => m.kind === "stopped"), "the device worker to stop");
        const stopped = messages.find((m) => m.kind === "stopped")!;
        expect(stopped.txFrames).toBe(1);
        expect(stopped.rxFrames).toBeGreaterThanOrEqual(1);
      } finally {
        worker.terminate();
        server.kill();
        await server.exited;
        d.close();
        for (const e of [...notify, irq, stop]) e.close();
      }
    });
  });

  test("one-line errors: invalid MAC or name, a missing TAP, a busy TAP, no permission", async () => {
    const err = (f: () => unknown): BunvmmError => {
      try {
        f();
      } catch (e) {
        if (e instanceof BunvmmError) return e;
        throw e;
      }
      throw new Error("no error thrown");
    };
    const mac = err(() => NetBackend.open({ tap: "vmtap9", mac: "01:00:00:00:00:01" }));
    expect(mac.kind).toBe("input");
    expect(mac.message).toContain('invalid MAC address "01:00:00:00:00:01"');
    expect(err(() => parseMac("02:00:00:00:00")).message).toContain("invalid MAC address");
    expect(err(() => Tap.open("a-name-longer-than-15")).message).toContain("not a valid interface name");
    await withNetns(async (ns) => {
      const missing = err(() => ns.enter(() => Tap.open("vmtapmissing", { mustExist: true })));
      expect(missing.kind).toBe("input");
      expect(missing.message).toBe(
        "tap vmtapmissing does not exist (create it first, e.g. ip tuntap add vmtapmissing mode tap)",
      );
      const notTap = err(() => ns.enter(() => Tap.open("lo")));
      expect(notTap.message).toBe("lo is not a TAP device (TUNSETIFF refused it: invalid argument)");
      const first = ns.enter(() => Tap.open("vmtapbusy"));
      try {
        const busy = err(() => ns.enter(() => Tap.open("vmtapbusy")));
        expect(busy.kind).toBe("host");
        expect(busy.message).toBe("tap vmtapbusy is busy: another process has it open");
      } finally {
        first.close();
      }
    });
    const script = nobodyScript(
      "tap-as-nobody",
      `import { Tap } from ${JSON.stringify(join(import.meta.dir, "../../../devices/virtio/tap.ts"))};
try { Tap.open("vmtapnobody"); console.log("opened"); } catch (e) { console.log(e.message); }`,
    );
    const r = runAsNobody(script);
    expect(r.stdout.trim()).toMatch(
      /^permission denied attaching tap vmtapnobody|^cannot open \/dev\/net\/tun/,
    );
  });
});
