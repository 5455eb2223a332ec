/** The virtio-vsock layouts and constants (ffi/virtio-layouts.ts) against <linux/virtio_vsock.h>. */
import { expect, test } from "bun:test";
import { VIRTIO_VSOCK_CHECKED_CONSTANTS, VIRTIO_VSOCK_LAYOUTS } from "../../../ffi/virtio-layouts.ts";
import { cLayoutMismatches } from "../../helpers/c-layout.ts";

test("virtio-vsock header, config, event and constants match <linux/virtio_vsock.h>", () => {
  const mismatches = cLayoutMismatches({
    prelude: ["#include <linux/virtio_ids.h>", "#include <linux/virtio_vsock.h>"],
    layouts: VIRTIO_VSOCK_LAYOUTS,
    constants: VIRTIO_VSOCK_CHECKED_CONSTANTS,
  });
  expect(mismatches).toEqual([]);
  expect(VIRTIO_VSOCK_LAYOUTS.find((l) => l.cType === "struct virtio_vsock_hdr")?.size).toBe(44);
});
