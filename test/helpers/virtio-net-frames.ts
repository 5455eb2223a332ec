/**
 * Ethernet + IPv4 + UDP frames for the virtio-net tests: built (with a correct IPv4 header checksum;
 * the UDP checksum is left 0, "none", which IPv4 allows) and parsed back, plus a line reader for the
 * stdout of helper processes. Test-only.
 */
import { waitUntil } from "./guests.ts";

/** Ethernet header: destination, source, EtherType (big-endian, like every field below). */
const ETH_DST = 0;
const ETH_SRC = 6;
const ETH_TYPE = 12;
const ETH_HLEN = 14;
const ETHERTYPE_IPV4 = 0x0800;
/** IPv4 header (no options): version/IHL, total length, TTL, protocol, checksum, addresses. */
const IP_VERSION_IHL = 0;
const IP_TOTAL_LEN = 2;
const IP_TTL = 8;
const IP_PROTOCOL = 9;
const IP_CHECKSUM = 10;
const IP_SRC = 12;
const IP_DST = 16;
const IPV4_HLEN = 20;
/** Version 4, five 32-bit words of header. */
const IPV4_NO_OPTIONS = 0x45;
const IHL_MASK = 0xf;
const IHL_UNIT = 4;
const IPPROTO_UDP = 17;
const TTL = 64;
/** UDP header: ports, length, checksum (0: none). */
const UDP_SRC_PORT = 0;
const UDP_DST_PORT = 2;
const UDP_LEN = 4;
const UDP_HLEN = 8;

export function macBytes(text: string): Uint8Array {
  return new Uint8Array(text.split(":").map((h) => Number.parseInt(h, 16)));
}

function ipBytes(text: string): number[] {
  return text.split(".").map(Number);
}

/** The Internet checksum: one's complement of the one's-complement sum of 16-bit words. */
function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface Udp {
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** An Ethernet frame carrying one UDP datagram. */
export function udpFrame(u: Udp): Uint8Array {
  const ipLen = IPV4_HLEN + UDP_HLEN + u.payload.length;
  const f = new Uint8Array(ETH_HLEN + ipLen);
  const v = new DataView(f.buffer);
  f.set(macBytes(u.dstMac), ETH_DST);
  f.set(macBytes(u.srcMac), ETH_SRC);
  v.setUint16(ETH_TYPE, ETHERTYPE_IPV4);
  const ip = ETH_HLEN;
  f[ip + IP_VERSION_IHL] = IPV4_NO_OPTIONS;
  v.setUint16(ip + IP_TOTAL_LEN, ipLen);
  f[ip + IP_TTL] = TTL;
  f[ip + IP_PROTOCOL] = IPPROTO_UDP;
  f.set(ipBytes(u.srcIp), ip + IP_SRC);
  f.set(ipBytes(u.dstIp), ip + IP_DST);
  v.setUint16(ip + IP_CHECKSUM, checksum(f.subarray(ip, ip + IPV4_HLEN)));
  const udp = ip + IPV4_HLEN;
  v.setUint16(udp + UDP_SRC_PORT, u.srcPort);
  v.setUint16(udp + UDP_DST_PORT, u.dstPort);
  v.setUint16(udp + UDP_LEN, UDP_HLEN + u.payload.length);
  f.set(u.payload, udp + UDP_HLEN);
  return f;
}

/** The UDP payload and ports of an Ethernet frame, or null when it is not IPv4/UDP. */
export function parseUdp(f: Uint8Array): { srcPort: number; dstPort: number; payload: Uint8Array } | null {
  if (f.length < ETH_HLEN + IPV4_HLEN + UDP_HLEN) return null;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (v.getUint16(ETH_TYPE) !== ETHERTYPE_IPV4 || f[ETH_HLEN + IP_PROTOCOL] !== IPPROTO_UDP) return null;
  const udp = ETH_HLEN + (f[ETH_HLEN + IP_VERSION_IHL]! & IHL_MASK) * IHL_UNIT;
  const len = v.getUint16(udp + UDP_LEN);
  return {
    srcPort: v.getUint16(udp + UDP_SRC_PORT),
    dstPort: v.getUint16(udp + UDP_DST_PORT),
    payload: f.slice(udp + UDP_HLEN, udp + len),
  };
}

/** Collects a process's stdout as lines; `line(match)` waits (with a deadline) for one that matches. */
export class LineReader {
  private text = "";
  private done = false;
  constructor(stream: ReadableStream<Uint8Array>) {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this.text += decoder.decode(chunk);
      this.done = true;
    })();
  }
  /** Complete lines only: a line still being written (no newline yet) is not one. */
  get lines(): string[] {
    const end = this.done ? this.text.length : this.text.lastIndexOf("\n") + 1;
    return this.text
      .slice(0, end)
      .split("\n")
      .filter((l) => l.length > 0);
  }
  async line(match: RegExp, what: string, timeoutMs = 20_000): Promise<string> {
    await waitUntil(() => this.done || this.lines.some((l) => match.test(l)), what, timeoutMs);
    const hit = this.lines.find((l) => match.test(l));
    if (!hit) throw new Error(`${what}: the process ended; its output: ${this.text}`);
    return hit;
  }
}
