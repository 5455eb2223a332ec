/**
 * A TAP device for virtio-net: opened through /dev/net/tun with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, so
 * every frame read or written carries a virtio_net_hdr in front; the header size is set to the 12-byte
 * version-1 header (TUNSETVNETHDRSZ), the one a VERSION_1 driver uses, so frames pass between guest and
 * TAP with their header unchanged. The fd is non-blocking: a device worker polls it.
 *
 * Opening a name that does not exist creates a TAP that lives as long as the fd (root, or CAP_NET_ADMIN,
 * is needed); `mustExist` refuses that instead. A TAP made persistent beforehand (`createTap`, with
 * `ip tuntap`, named `vmtapN` with the first free N, as cloud-hypervisor names them) is simply attached.
 * Addresses, link state and deletion go through `ip` from iproute2 (Bun.spawnSync), not netlink.
 *
 * Errors, one line each: no /dev/net/tun, permission denied, a TAP another process holds (EBUSY), a
 * missing TAP with `mustExist`, a name that is not a valid interface name.
 *
 * Threads: `Tap` is used by the device's worker; the fd is a number and may be opened on the VMM thread
 * (where an error can stop the VM before it starts) and handed over (`Tap.fromFd`). `createTap`/`deleteTap` run `ip` synchronously (set-up and tear-down only).
 */
import { ptr } from "bun:ffi";
import { EAGAIN, ERRNO } from "../../ffi/errno-names.ts";
import { cString, errno, libc, O_CLOEXEC, O_RDWR } from "../../ffi/libc.ts";
import {
  AF_UNIX,
  EBADFD,
  IFF_NO_PI,
  IFF_TAP,
  IFF_VNET_HDR,
  IFNAMSIZ,
  IFREQ_LAYOUT,
  IOVEC_LAYOUT,
  libcNet,
  O_NONBLOCK,
  SIOCGIFINDEX,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  TUNSETIFF,
  TUNSETOFFLOAD,
  TUNSETVNETHDRSZ,
} from "../../ffi/libc-net.ts";
import { VIRTIO_NET_HDR_V1_LAYOUT } from "../../ffi/virtio-layouts.ts";
import { BunvmmError } from "../../src/errors.ts";
import { LibcError } from "../../src/sys/libc-error.ts";

export const TUN_DEVICE = "/dev/net/tun";
/** The name prefix of TAPs `createTap` makes. */
export const TAP_PREFIX = "vmtap";
/** How many `vmtapN` names createTap tries before giving up. */
const MAX_TAP_INDEX = 1024;

/** struct iovec as 64-bit words: base, then length. */
const IOV_WORDS = IOVEC_LAYOUT.size / BigUint64Array.BYTES_PER_ELEMENT;
const IOV_BASE = IOVEC_LAYOUT.fields.iov_base.offset / BigUint64Array.BYTES_PER_ELEMENT;
const IOV_LEN = IOVEC_LAYOUT.fields.iov_len.offset / BigUint64Array.BYTES_PER_ELEMENT;
/** iovecs allocated up front: a header and a frame, or a few fragments. */
const IOV_INITIAL = 8;

const ENOENT = ERRNO.ENOENT![0];
const EPERM = ERRNO.EPERM![0];
const EACCES = ERRNO.EACCES![0];
const EBUSY = ERRNO.EBUSY![0];
const ENODEV = ERRNO.ENODEV![0];

/** Checks an interface name (what the kernel's dev_valid_name accepts); throws an "input" error. */
export function checkInterfaceName(name: string): void {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length === 0 || bytes.length >= IFNAMSIZ || name === "." || name === ".." || /[/:\s]/.test(name))
    throw new BunvmmError(
      "input",
      `tap name "${name}" is not a valid interface name (1 to ${IFNAMSIZ - 1} bytes, no "/", ":" or spaces)`,
    );
}

function ifreq(name: string, flags = 0): Uint8Array {
  const req = new Uint8Array(IFREQ_LAYOUT.size);
  req.set(new TextEncoder().encode(name), IFREQ_LAYOUT.fields.ifr_name.offset);
  new DataView(req.buffer).setUint16(IFREQ_LAYOUT.fields.ifr_flags.offset, flags, true);
  return req;
}

/** True when an interface called `name` exists in the calling thread's network namespace. */
export function interfaceExists(name: string): boolean {
  checkInterfaceName(name);
  const s = libcNet.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) throw new LibcError("socket(AF_UNIX) for SIOCGIFINDEX", errno());
  try {
    if (libcNet.ioctl(s, SIOCGIFINDEX, ifreq(name)) === 0) return true;
    const e = errno();
    if (e === ENODEV) return false;
    throw new LibcError(`ioctl(SIOCGIFINDEX) for ${name}`, e);
  } finally {
    libc.close(s);
  }
}

export interface TapOpenOptions {
  /** Refuse to create the TAP: it must exist already. Default false. */
  readonly mustExist?: boolean;
}

export class Tap {
  private closed = false;
  /** struct iovec array for writev, grown to the longest chain seen. */
  private iov = new BigUint64Array(IOV_WORDS * IOV_INITIAL);

  private constructor(
    readonly name: string,
    readonly fd: number,
  ) {}

  /**
   * Opens (or, unless `mustExist`, creates) the TAP `name` for frames with a 12-byte virtio_net_hdr.
   * @throws {BunvmmError} one line naming the TAP and what went wrong.
   */
  static open(name: string, options: TapOpenOptions = {}): Tap {
    checkInterfaceName(name);
    if (options.mustExist && !interfaceExists(name))
      throw new BunvmmError(
        "input",
        `tap ${name} does not exist (create it first, e.g. ip tuntap add ${name} mode tap)`,
      );
    const fd = libc.open(cString(TUN_DEVICE), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) {
      const e = errno();
      if (e === ENOENT)
        throw new BunvmmError("host", `${TUN_DEVICE} does not exist: this host has no TUN/TAP support`);
      if (e === EACCES || e === EPERM)
        throw new BunvmmError("host", `cannot open ${TUN_DEVICE} for tap ${name}: permission denied`);
      throw new LibcError(`open ${TUN_DEVICE} for tap ${name}`, e);
    }
    try {
      if (libcNet.ioctl(fd, TUNSETIFF, ifreq(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)) !== 0) {
        const e = errno();
        if (e === EBUSY) throw new BunvmmError("host", `tap ${name} is busy: another process has it open`);
        if (e === EPERM || e === EACCES)
          throw new BunvmmError(
            "host",
            `permission denied attaching tap ${name}: creating or opening a TAP needs CAP_NET_ADMIN (or a TAP owned by this user)`,
          );
        if (e === ERRNO.EINVAL![0])
          throw new BunvmmError(
            "input",
            `${name} is not a TAP device (TUNSETIFF refused it: invalid argument)`,
          );
        throw new LibcError(`ioctl(TUNSETIFF) on tap ${name}`, e);
      }
      const size = new Int32Array([VIRTIO_NET_HDR_V1_LAYOUT.size]);
      if (libcNet.ioctl(fd, TUNSETVNETHDRSZ, size) !== 0)
        throw new LibcError(`ioctl(TUNSETVNETHDRSZ, ${size[0]}) on tap ${name}`, errno());
      const tap = new Tap(name, fd);
      tap.setOffload(0);
      return tap;
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  /**
   * A TAP another thread opened with `Tap.open`, by its fd (the number crosses to a device worker, the
   * fd stays valid in every thread of the process). Only one of the two objects should be closed.
   */
  static fromFd(name: string, fd: number): Tap {
    checkInterfaceName(name);
    return new Tap(name, fd);
  }

  /** TUNSETOFFLOAD: which offloads (TUN_F_*) the TAP may hand us; 0 = full frames, checksums done. */
  setOffload(flags: number): void {
    // TUNSETOFFLOAD takes the flags as the argument itself, not through a pointer.
    if (libc.ioctl(this.fd, TUNSETOFFLOAD, flags) !== 0) {
      const e = errno();
      if (e === EBADFD) throw this.gone();
      throw new LibcError(`ioctl(TUNSETOFFLOAD, 0x${flags.toString(16)}) on tap ${this.name}`, e);
    }
  }

  /**
   * Reads one frame (header + Ethernet frame) into `buf`; returns its length, or 0 when none is queued.
   * @throws {BunvmmError} when the TAP is gone (deleted while open) or the read fails.
   */
  read(buf: Uint8Array): number {
    const n = Number(libc.read(this.fd, buf, buf.length));
    if (n >= 0) return n;
    const e = errno();
    if (e === EAGAIN) return 0;
    if (e === EBADFD) throw this.gone();
    throw new LibcError(`read from tap ${this.name}`, e);
  }

  /** Writes one frame (header + Ethernet frame); returns the errno when the TAP refused it, 0 on success. */
  write(frame: Uint8Array): number {
    const n = Number(libc.write(this.fd, frame, frame.length));
    return n === frame.length ? 0 : n < 0 ? errno() : EAGAIN;
  }

  /**
   * Writes one frame gathered from `parts` (views of guest RAM: no copy) with writev; returns the errno
   * when the TAP refused it, 0 on success.
   */
  writev(parts: readonly Uint8Array[]): number {
    if (this.iov.length < parts.length * IOV_WORDS) this.iov = new BigUint64Array(parts.length * IOV_WORDS);
    let total = 0;
    parts.forEach((p, i) => {
      this.iov[i * IOV_WORDS + IOV_BASE] = BigInt(ptr(p));
      this.iov[i * IOV_WORDS + IOV_LEN] = BigInt(p.length);
      total += p.length;
    });
    const n = Number(libcNet.writev(this.fd, this.iov, parts.length));
    return n === total ? 0 : n < 0 ? errno() : EAGAIN;
  }

  /** The error for a TAP whose device was deleted while this fd was attached (EBADFD). */
  private gone(): BunvmmError {
    return new BunvmmError("host", `tap ${this.name} is gone: it was deleted while in use`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }
}

function ipCommand(args: string[], netns?: string): { ok: boolean; stderr: string } {
  const argv = netns ? ["ip", "-n", netns, ...args] : ["ip", ...args];
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  return { ok: r.exitCode === 0, stderr: r.stderr.toString().trim() };
}

function ip(args: string[], netns?: string): void {
  const r = ipCommand(args, netns);
  if (!r.ok)
    throw new BunvmmError("host", `ip ${netns ? `-n ${netns} ` : ""}${args.join(" ")} failed: ${r.stderr}`);
}

export interface CreateTapOptions {
  /** Name prefix (default `vmtap`); the first free `<prefix>N` is taken. */
  readonly prefix?: string;
  /** An IPv4 address with its prefix length, e.g. 192.0.2.1/24, put on the TAP. */
  readonly address?: string;
  /** Network namespace (a name under /var/run/netns) to create it in. */
  readonly netns?: string;
}

/**
 * Creates a persistent TAP `<prefix>N` (the first N not in use) with `ip tuntap`, gives it `address`
 * and brings it up. Returns its name. Needs root (or CAP_NET_ADMIN).
 */
export function createTap(options: CreateTapOptions = {}): string {
  const prefix = options.prefix ?? TAP_PREFIX;
  for (let n = 0; n < MAX_TAP_INDEX; n++) {
    const name = `${prefix}${n}`;
    checkInterfaceName(name);
    const r = ipCommand(["tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr"], options.netns);
    if (!r.ok) {
      if (/exists|busy/i.test(r.stderr)) continue; // taken: try the next N
      throw new BunvmmError("host", `cannot create tap ${name}: ${r.stderr}`);
    }
    try {
      if (options.address) ip(["addr", "add", options.address, "dev", name], options.netns);
      ip(["link", "set", "dev", name, "up"], options.netns);
    } catch (e) {
      deleteTap(name, options.netns);
      throw e;
    }
    return name;
  }
  throw new BunvmmError("host", `no free tap name ${prefix}0..${prefix}${MAX_TAP_INDEX - 1}`);
}

/** Deletes the TAP `name` (persistent or not). */
export function deleteTap(name: string, netns?: string): void {
  checkInterfaceName(name);
  ip(["link", "delete", "dev", name], netns);
}
