/**
 * The virtio-vsock device type, present when the config has a `[vsock]` table: the guest gets context
 * ID `cid`; host programs reach it through the Unix socket `socket` (`CONNECT <port>\n`, answered
 * `OK <host port>\n`), and the guest's connections to host port P go to the Unix socket `<socket>_P`
 * (devices/virtio/vsock.ts, Firecracker's hybrid scheme).
 *
 * `connect` binds and listens on `socket` on the VMM thread while the machine is built, so a path in
 * use (another VM listens there) or a file that is not a socket stops the VM before it starts, with one
 * line naming the key; a stale socket file nobody listens on is replaced. The listener fd goes to the
 * device worker; the connection's `close` closes it and removes the socket file when the VM ends. A
 * process that exits without ending its VMs (a library user's `process.exit()`) still removes the
 * socket files it bound: the paths are kept in `boundSockets` and unlinked by a `process.on("exit")`
 * handler (the kernel closes the fds by itself, but a socket file outlives its listener).
 *
 * After `restore` the guest's connections are gone (their host sockets belong to the VM that was
 * saved): the device owes the guest VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, flagged in VSOCK_RESET_OWED,
 * which the worker turns into the event on its next call (resume re-checks every queue).
 *
 * Threads: VMM thread, except `attach` (every vCPU worker); the back-end runs in src/vmm/virtio-worker.ts.
 */
import { unlinkSync } from "node:fs";
import { libc } from "../../ffi/libc.ts";
import type { VsockConfig } from "../../src/config/schema.ts";
import { BunvmmError } from "../../src/errors.ts";
import type { DeviceKind, DeviceType } from "../device-type.ts";
import {
  commonVirtioCounters,
  connectVirtioEventFds,
  createVirtioMmio,
  VIRTIO_WORKER_ENTRY,
  type VirtioMmioSpec,
  virtioBackendInit,
  virtioMmioKind,
} from "./mmio-device.ts";
import {
  VSOCK_BAD_CHAINS,
  VSOCK_BAD_PACKETS,
  VSOCK_BYTES_TO_GUEST,
  VSOCK_BYTES_TO_HOST,
  VSOCK_CONNECTIONS,
  VSOCK_CREDIT_VIOLATIONS,
  VSOCK_OPEN_CONNECTIONS,
  VSOCK_QUEUE_SIZE,
  VSOCK_REFUSED_CLIENTS,
  VSOCK_RESET_OWED,
  VSOCK_RST_DROPPED,
  VSOCK_RST_SENT,
  VsockBackend,
} from "./vsock.ts";

export { VSOCK_OPEN_CONNECTIONS, VSOCK_RESET_OWED };

/** Socket files this process bound and has not removed yet; unlinked at exit. */
const boundSockets = new Set<string>();
let exitHandlerInstalled = false;

function removeSocketFile(path: string): void {
  boundSockets.delete(path);
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Remembers a bound socket file so that it is removed however the process exits (but SIGKILL). */
function trackSocketFile(path: string): void {
  boundSockets.add(path);
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on("exit", () => {
    for (const p of [...boundSockets]) removeSocketFile(p);
  });
}

export interface VirtioVsockSpec extends VirtioMmioSpec {
  readonly kind: "virtio-vsock";
  readonly vsock: VsockConfig;
}

/** What the worker starts the vsock back-end from: the listener bound on the VMM thread. */
export interface VsockDeviceInit {
  readonly cid: number;
  readonly socket: string;
  readonly listenerFd: number;
  readonly queueSize: number;
}

export const virtioVsockKind: DeviceKind<VirtioVsockSpec> = {
  ...virtioMmioKind("virtio-vsock"),
  connect(spec, host) {
    let listener: number;
    try {
      listener = VsockBackend.listen(spec.vsock.socket);
    } catch (e) {
      const kind = e instanceof BunvmmError ? e.kind : "host";
      throw new BunvmmError(
        kind,
        `vsock.socket = ${JSON.stringify(spec.vsock.socket)}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    trackSocketFile(spec.vsock.socket);
    const closeListener = () => {
      libc.close(listener);
      removeSocketFile(spec.vsock.socket);
    };
    let fds: ReturnType<typeof connectVirtioEventFds>;
    try {
      fds = connectVirtioEventFds(spec, host);
    } catch (e) {
      closeListener();
      throw e;
    }
    const init = virtioBackendInit<VsockDeviceInit>(spec, host, fds, {
      cid: spec.vsock.cid,
      socket: spec.vsock.socket,
      listenerFd: listener,
      queueSize: VSOCK_QUEUE_SIZE,
    });
    const c = new BigInt64Array(spec.counters);
    const read = (word: number) => Number(Atomics.load(c, word));
    return {
      backend: { entry: VIRTIO_WORKER_ENTRY, init },
      counters: () => ({
        ...commonVirtioCounters(spec),
        connections: read(VSOCK_CONNECTIONS),
        open_connections: read(VSOCK_OPEN_CONNECTIONS),
        rx_bytes: read(VSOCK_BYTES_TO_GUEST),
        tx_bytes: read(VSOCK_BYTES_TO_HOST),
        rst_sent: read(VSOCK_RST_SENT),
        rst_dropped: read(VSOCK_RST_DROPPED),
        bad_packets: read(VSOCK_BAD_PACKETS),
        bad_chains: read(VSOCK_BAD_CHAINS),
        credit_violations: read(VSOCK_CREDIT_VIOLATIONS),
        refused_clients: read(VSOCK_REFUSED_CLIENTS),
      }),
      close: () => {
        fds.close();
        closeListener();
      },
    };
  },
  restore(spec, state) {
    virtioMmioKind("virtio-vsock").restore(spec, state);
    // The saved VM's host sockets are not ours: tell the guest its connections are gone.
    Atomics.store(new BigInt64Array(spec.counters), VSOCK_RESET_OWED, 1n);
  },
};

/** The type of the `[vsock]` device. */
export function virtioVsockType(vsock: VsockConfig): DeviceType<VirtioVsockSpec> {
  return {
    ...virtioVsockKind,
    create: (resources) => ({
      ...createVirtioMmio(
        resources,
        "virtio-vsock",
        vsock.id,
        VsockBackend.deviceInfo(vsock.cid, VSOCK_QUEUE_SIZE),
      ),
      kind: "virtio-vsock",
      vsock,
    }),
  };
}
