/**
 * ffi/virtio-layouts.ts against the kernel's virtio headers: a generated C program (compiled by gcc
 * with linux-libc-dev's <linux/virtio_*.h>) prints every offset, size and constant, and the test lists
 * each one that differs from ours.
 */
import { expect, test } from "bun:test";
import {
  VIRTIO_CHECKED_CONSTANTS,
  VIRTIO_FLEXIBLE_ARRAYS,
  VIRTIO_LAYOUTS,
} from "../../../ffi/virtio-layouts.ts";
import { cLayoutMismatches } from "../../helpers/c-layout.ts";

const HEADERS = [
  "#include <linux/virtio_mmio.h>",
  "#include <linux/virtio_ring.h>",
  "#include <linux/virtio_blk.h>",
  "#include <linux/virtio_config.h>",
  "#include <linux/virtio_console.h>",
  "#include <linux/virtio_ids.h>",
];

test("every virtio layout, flexible-array offset and constant matches the <linux/virtio_*.h> headers", () => {
  // A constant's name is printed as a C expression, so offsetof() expressions check the ring[] offsets.
  const flexible = Object.fromEntries(
    Object.values(VIRTIO_FLEXIBLE_ARRAYS).map(([cType, member, offset]) => [
      `offsetof(${cType}, ${member})`,
      offset,
    ]),
  );
  const mismatches = cLayoutMismatches({
    prelude: HEADERS,
    layouts: VIRTIO_LAYOUTS,
    constants: { ...VIRTIO_CHECKED_CONSTANTS, ...flexible },
  });
  expect(mismatches).toEqual([]);
  expect(Object.keys(VIRTIO_CHECKED_CONSTANTS).length).toBeGreaterThan(50);
});
