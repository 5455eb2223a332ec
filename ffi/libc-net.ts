/**
 * libc's socket calls and the TUN/TAP ioctls, through bun:ffi: Unix stream sockets for the vsock
 * back-end (socket, bind, listen, accept4, connect, send, recv, shutdown), `ioctl` with a pointer
 * argument for TUNSETIFF and friends (ffi/libc.ts declares ioctl with an integer argument, which is what
 * the KVM calls want), and writev, which hands a TAP one frame gathered straight from guest RAM.
 *
 * Kept apart from ffi/libc.ts so each file declares one concern. Callers read `errno()` (ffi/libc.ts)
 * in the statement right after a call that returned -1. Every constant and the two struct layouts are
 * checked against <sys/socket.h>, <sys/un.h>, <sys/uio.h>, <net/if.h>, <linux/if_tun.h> and <errno.h> by
 * test/devices/virtio/net-layouts.test.ts.
 *
 * Threads: safe from any thread (each Worker dlopens its own handle).
 */
import { dlopen, FFIType } from "bun:ffi";
import { cLayout } from "../src/arch/x86_64/struct-layout.ts";

const lib = dlopen("libc.so.6", {
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  listen: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  accept4: { args: [FFIType.i32, FFIType.ptr, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  shutdown: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  writev: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i64 },
});

export const libcNet = lib.symbols;

/** socket(2) domain, type and flags (<sys/socket.h>). */
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
/** send/recv flags: no SIGPIPE on a closed peer; do not block even on a blocking socket. */
export const MSG_NOSIGNAL = 0x4000;
export const MSG_DONTWAIT = 0x40;
/** shutdown(2) directions. */
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
/** open(2): non-blocking (<fcntl.h>). */
export const O_NONBLOCK = 0o4000;
/** poll(2): writable without blocking (<poll.h>); POLLIN and friends are in ffi/libc.ts. */
export const POLLOUT = 0x004;

/** errno values the socket paths tell apart, beyond ffi/errno-names.ts. */
/** A TAP's fd after its device was deleted. */
export const EBADFD = 77;
export const ECONNABORTED = 103;
export const ECONNRESET = 104;
export const ENOTCONN = 107;
export const EINPROGRESS = 115;

/** struct sockaddr_un: a family word, then a NUL-terminated path of at most 107 bytes. */
export const SOCKADDR_UN_LAYOUT = cLayout("struct sockaddr_un", 110, {
  sun_family: [0, 2],
  sun_path: [2, 108],
});

/** struct iovec: one buffer of a writev(2) gather list. */
export const IOVEC_LAYOUT = cLayout("struct iovec", 16, {
  iov_base: [0, 8],
  iov_len: [8, 8],
});

/** struct ifreq as TUNSETIFF reads it: the interface name, then ifr_flags in the union. */
export const IFREQ_LAYOUT = cLayout("struct ifreq", 40, {
  ifr_name: [0, 16],
  ifr_flags: [16, 2],
});
/** IFNAMSIZ: name bytes including the NUL. */
export const IFNAMSIZ = 16;
/** struct ifreq's ifr_ifindex (same union offset as ifr_flags), as SIOCGIFINDEX fills it. */
export const IFREQ_IFINDEX = 16;
/** Name to interface index, on any socket (<linux/sockios.h>): ENODEV when no such interface. */
export const SIOCGIFINDEX = 0x8933;

/** TUN/TAP ioctls (<linux/if_tun.h>: _IOW('T', nr, int) and _IOR('T', nr, unsigned int)). */
export const TUNSETIFF = 0x4004_54ca;
export const TUNSETOFFLOAD = 0x4004_54d0;
export const TUNGETIFF = 0x8004_54d2;
export const TUNSETVNETHDRSZ = 0x4004_54d8;
/** TUNSETIFF flags: an Ethernet device, no packet-information prefix, a virtio_net_hdr per frame. */
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
/** TUNSETOFFLOAD bits: what the TAP may hand us (partial checksums, TSO frames). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;

/** Constants above as C expressions, for the header test. */
export const NET_CHECKED_CONSTANTS: Readonly<Record<string, number>> = {
  AF_UNIX,
  SOCK_STREAM,
  SOCK_NONBLOCK,
  SOCK_CLOEXEC,
  MSG_NOSIGNAL,
  MSG_DONTWAIT,
  SHUT_RD,
  SHUT_WR,
  SHUT_RDWR,
  O_NONBLOCK,
  POLLOUT,
  EBADFD,
  ECONNABORTED,
  ECONNRESET,
  ENOTCONN,
  EINPROGRESS,
  IFNAMSIZ,
  "offsetof(struct ifreq, ifr_ifindex)": IFREQ_IFINDEX,
  SIOCGIFINDEX,
  TUNSETIFF,
  TUNSETOFFLOAD,
  TUNGETIFF,
  TUNSETVNETHDRSZ,
  IFF_TAP,
  IFF_NO_PI,
  IFF_VNET_HDR,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
};

/** A struct sockaddr_un for `path`, and the length to pass with it. Throws if the path is too long. */
export function sockaddrUn(path: string): { addr: Uint8Array; len: number } {
  const bytes = new TextEncoder().encode(path);
  const room = SOCKADDR_UN_LAYOUT.fields.sun_path.size - 1;
  if (bytes.length > room)
    throw new RangeError(`socket path ${path} is ${bytes.length} bytes; the most is ${room}`);
  const addr = new Uint8Array(SOCKADDR_UN_LAYOUT.size);
  new DataView(addr.buffer).setUint16(SOCKADDR_UN_LAYOUT.fields.sun_family.offset, AF_UNIX, true);
  addr.set(bytes, SOCKADDR_UN_LAYOUT.fields.sun_path.offset);
  return { addr, len: SOCKADDR_UN_LAYOUT.fields.sun_path.offset + bytes.length + 1 };
}
