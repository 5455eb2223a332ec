/**
 * Ethernet + IPv4 + UDP frames for the virtio-net tests: built (with a correct IPv4 header checksum;
 * the UDP checksum is left 0, "none", which IPv4 allows) and parsed back, plus a line reader for the
 * stdout of helper processes. Test-only.
 */
import { waitUntil } from "../../helpers/guests.ts";

const ETH_HLEN = 14;
const ETHERTYPE_IPV4 = 0x0800;
const IPV4_HLEN = 20;
const IPPROTO_UDP = 17;
const UDP_HLEN = 8;
const TTL = 64;

export function macBytes(text: string): Uint8Array {
  return new Uint8Array(text.split(":").map((h) => Number.parseInt(h, 16)));
}

function ipBytes(text: string): number[] {
  return text.split(".").map(Number);
}

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
  f.set(macBytes(u.dstMac), 0);
  f.set(macBytes(u.srcMac), 6);
  v.setUint16(12, ETHERTYPE_IPV4);
  const ip = ETH_HLEN;
  f[ip] = 0x45; // version 4, 5 words of header
  v.setUint16(ip + 2, ipLen);
  f[ip + 8] = TTL;
  f[ip + 9] = IPPROTO_UDP;
  f.set(ipBytes(u.srcIp), ip + 12);
  f.set(ipBytes(u.dstIp), ip + 16);
  v.setUint16(ip + 10, checksum(f.subarray(ip, ip + IPV4_HLEN)));
  const udp = ip + IPV4_HLEN;
  v.setUint16(udp, u.srcPort);
  v.setUint16(udp + 2, u.dstPort);
  v.setUint16(udp + 4, UDP_HLEN + u.payload.length);
  f.set(u.payload, udp + UDP_HLEN);
  return f;
}

/** The UDP payload and ports of an Ethernet frame, or null when it is not IPv4/UDP. */
export function parseUdp(f: Uint8Array): { srcPort: number; dstPort: number; payload: Uint8Array } | null {
  if (f.length < ETH_HLEN + IPV4_HLEN + UDP_HLEN) return null;
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (v.getUint16(12) !== ETHERTYPE_IPV4 || f[ETH_HLEN + 9] !== IPPROTO_UDP) return null;
  const ihl = (f[ETH_HLEN]! & 0xf) * 4;
  const udp = ETH_HLEN + ihl;
  const len = v.getUint16(udp + 4);
  return {
    srcPort: v.getUint16(udp),
    dstPort: v.getUint16(udp + 2),
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
  get lines(): string[] {
    return this.text.split("\n").filter((l) => l.length > 0);
  }
  async line(match: RegExp, what: string, timeoutMs = 20_000): Promise<string> {
    await waitUntil(() => this.done || this.lines.some((l) => match.test(l)), what, timeoutMs);
    const hit = this.lines.find((l) => match.test(l));
    if (!hit) throw new Error(`${what}: the process ended; its output: ${this.text}`);
    return hit;
  }
}
