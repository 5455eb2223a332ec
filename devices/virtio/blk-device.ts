/**
 * The virtio-blk device type: one per `[[disks]]` entry. `create` claims the transport's window and GSI;
 * `connect` opens and locks the image on the VMM thread while the machine is built (so a missing,
 * unreadable, badly sized or locked image stops the VM before it starts, with one line naming the
 * config key), writes its capacity into the config space and registers the eventfds; the device worker
 * adopts the open fd (BlockBackend.adopt) and serves the request queue.
 *
 * Threads: VMM thread, except `attach` (every vCPU worker); the back-end runs in src/vmm/virtio-worker.ts.
 */

import type { DiskConfig } from "../../src/config/schema.ts";
import { BunvmmError } from "../../src/errors.ts";
import type { DeviceKind, DeviceType } from "../device-type.ts";
import {
  BLK_BAD_REQUESTS,
  BLK_DISCARD_OPS,
  BLK_FLUSH_OPS,
  BLK_READ_BYTES,
  BLK_READ_OPS,
  BLK_WRITE_BYTES,
  BLK_WRITE_OPS,
  BLOCK_DEFAULT_QUEUE_SIZE,
  BlockBackend,
  type OpenedImage,
} from "./block.ts";
import {
  commonVirtioCounters,
  connectVirtioEventFds,
  createVirtioMmio,
  VIRTIO_WORKER_ENTRY,
  type VirtioMmioSpec,
  virtioBackendInit,
  virtioMmioKind,
} from "./mmio-device.ts";
import { VirtioMmioState } from "./mmio-transport.ts";

export interface VirtioBlkSpec extends VirtioMmioSpec {
  readonly kind: "virtio-blk";
  /** The config entry, and its key in messages ("disks.0"). */
  readonly disk: DiskConfig;
  readonly key: string;
}

/** Names a failure to open the image by its config key: `disks.0.path = "/x.img": ...`. */
function diskError(spec: VirtioBlkSpec, e: unknown): BunvmmError {
  const message = e instanceof Error ? e.message : String(e);
  const kind = e instanceof BunvmmError ? e.kind : "host";
  return new BunvmmError(kind, `${spec.key}.path = ${JSON.stringify(spec.disk.path)}: ${message}`, {
    cause: e,
  });
}

/** Everything a virtio-blk device does from its spec alone. */
export const virtioBlkKind: DeviceKind<VirtioBlkSpec> = {
  ...virtioMmioKind("virtio-blk"),
  connect(spec, host) {
    let image: BlockBackend;
    try {
      image = BlockBackend.open({
        path: spec.disk.path,
        readOnly: spec.disk.readonly,
        direct: spec.disk.direct,
        serial: spec.disk.serial,
        queueSize: BLOCK_DEFAULT_QUEUE_SIZE,
      });
    } catch (e) {
      throw diskError(spec, e);
    }
    let fds: ReturnType<typeof connectVirtioEventFds>;
    try {
      // The capacity is known only now; no driver has read the config space yet.
      new VirtioMmioState(spec.state).config.set(image.info.config);
      fds = connectVirtioEventFds(spec, host);
    } catch (e) {
      image.close();
      throw e;
    }
    const init = virtioBackendInit<OpenedImage>(spec, host, fds, image.opened);
    const c = new BigInt64Array(spec.counters);
    const read = (word: number) => Number(Atomics.load(c, word));
    return {
      backend: { entry: VIRTIO_WORKER_ENTRY, init },
      counters: () => ({
        ...commonVirtioCounters(spec, BLK_BAD_REQUESTS),
        read_bytes: read(BLK_READ_BYTES),
        write_bytes: read(BLK_WRITE_BYTES),
        read_ops: read(BLK_READ_OPS),
        write_ops: read(BLK_WRITE_OPS),
        flush_ops: read(BLK_FLUSH_OPS),
        discard_ops: read(BLK_DISCARD_OPS),
      }),
      close: () => {
        fds.close();
        image.close();
      },
    };
  },
};

/** The type of one configured disk (`index` is its position in `[[disks]]`). */
export function virtioBlkType(disk: DiskConfig, index: number): DeviceType<VirtioBlkSpec> {
  return {
    ...virtioBlkKind,
    create: (resources) => ({
      // The capacity goes into the config space when the image is opened (connect).
      ...createVirtioMmio(
        resources,
        "virtio-blk",
        disk.id,
        BlockBackend.deviceInfo(0, disk.readonly, BLOCK_DEFAULT_QUEUE_SIZE),
      ),
      kind: "virtio-blk",
      disk,
      key: `disks.${index}`,
    }),
  };
}
