/**
 * The virtio-net layouts and constants (ffi/virtio-layouts.ts) against <linux/virtio_net.h>, and the
 * socket, TUN/TAP and errno constants and struct layouts of ffi/libc-net.ts against the C headers.
 */
import { expect, test } from "bun:test";
import {
  IFREQ_LAYOUT,
  IOVEC_LAYOUT,
  NET_CHECKED_CONSTANTS,
  SOCKADDR_UN_LAYOUT,
} from "../../../ffi/libc-net.ts";
import { VIRTIO_NET_CHECKED_CONSTANTS, VIRTIO_NET_LAYOUTS } from "../../../ffi/virtio-layouts.ts";
import { cLayoutMismatches } from "../../helpers/c-layout.ts";

test("virtio-net layouts and constants match <linux/virtio_net.h>", () => {
  const mismatches = cLayoutMismatches({
    prelude: ["#include <linux/virtio_net.h>"],
    layouts: VIRTIO_NET_LAYOUTS,
    constants: VIRTIO_NET_CHECKED_CONSTANTS,
  });
  expect(mismatches).toEqual([]);
  expect(Object.keys(VIRTIO_NET_CHECKED_CONSTANTS).length).toBeGreaterThan(20);
});

test("socket and TUN/TAP constants and layouts match <sys/socket.h>, <sys/un.h>, <net/if.h>, <linux/if_tun.h>", () => {
  const mismatches = cLayoutMismatches({
    prelude: [
      "#include <errno.h>",
      "#include <fcntl.h>",
      "#include <poll.h>",
      "#include <sys/ioctl.h>",
      "#include <sys/socket.h>",
      "#include <sys/uio.h>",
      "#include <sys/un.h>",
      "#include <net/if.h>",
      "#include <linux/sockios.h>",
      "#include <linux/if_tun.h>",
    ],
    layouts: [SOCKADDR_UN_LAYOUT, IFREQ_LAYOUT, IOVEC_LAYOUT],
    constants: NET_CHECKED_CONSTANTS,
  });
  expect(mismatches).toEqual([]);
});
