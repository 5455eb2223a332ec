/**
 * The virtio-net device type: one per `[[net]]` entry, on a TAP. `create` claims the transport's window
 * and GSI and writes the MAC and MTU into the config space; `connect` gets the TAP on the VMM thread
 * while the machine is built, so a missing, busy or forbidden TAP stops the VM before it starts, with
 * one line naming the config key:
 *  - `tap` given: that interface is attached (it must exist; it is not changed except for `ip`/`mask`
 *    and `host_mac` when given) and left in place when the VM ends;
 *  - no `tap`: bunvmm creates `vmtapN` (the first free N, chosen by the kernel from the name template
 *    `vmtap%d`), gives it `ip`/`mask` and `host_mac` when given and brings it up. It is created
 *    non-persistent: it exists exactly as long as its fd is open, so it goes away when the VM ends
 *    (closing the connection closes the fd), and also however the process ends (SIGTERM, a crash,
 *    even SIGKILL: the kernel closes the fd), with no clean-up handler to miss.
 * The address and link changes go through `ip` from iproute2 in the calling thread's network
 * namespace. The fd is handed to the device worker (`Tap.fromFd`), which polls it with the queues.
 *
 * Threads: VMM thread, except `attach` (every vCPU worker); the back-end runs in src/vmm/virtio-worker.ts.
 */
import { DEFAULT_NET_MASK, maskPrefixLength, type NetConfig } from "../../src/config/schema.ts";
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
  NET_BAD_CHAINS,
  NET_DEFAULT_MTU,
  NET_DEFAULT_QUEUE_SIZE,
  NET_RX_BYTES,
  NET_RX_DROPPED,
  NET_RX_FRAMES,
  NET_TAP_FAILED,
  NET_TX_BYTES,
  NET_TX_ERRORS,
  NET_TX_FRAMES,
  NET_TX_MALFORMED,
  NET_TX_OVERSIZED,
  NetBackend,
  parseMac,
} from "./net.ts";
import { TAP_PREFIX, Tap } from "./tap.ts";

export { NET_TAP_FAILED };

/** The kernel's name template for a TAP bunvmm creates: the first free `vmtapN`. */
export const CREATED_TAP_TEMPLATE = `${TAP_PREFIX}%d`;

export interface VirtioNetSpec extends VirtioMmioSpec {
  readonly kind: "virtio-net";
  /** The config entry, and its key in messages ("net.0"). */
  readonly net: NetConfig;
  readonly key: string;
}

/** What the worker starts the net back-end from: the TAP (opened on the VMM thread) and the device. */
export interface NetDeviceInit {
  readonly tapName: string;
  readonly tapFd: number;
  readonly mac: string;
  readonly mtu: number;
  readonly queueSize: number;
}

/** Runs `ip ...args`; throws a BunvmmError naming the command and its stderr when it fails. */
function ip(args: string[]): void {
  let r: ReturnType<typeof Bun.spawnSync>;
  try {
    r = Bun.spawnSync(["ip", ...args], { stdout: "ignore", stderr: "pipe" });
  } catch (e) {
    throw new BunvmmError(
      "host",
      `cannot run ip ${args.join(" ")}: ${(e as Error).message} (is iproute2 installed?)`,
    );
  }
  if (r.exitCode !== 0)
    throw new BunvmmError("host", `ip ${args.join(" ")} failed: ${r.stderr?.toString().trim()}`);
}

/** Names a TAP failure by its config key: `net.0.tap = "vmtap9": ...` (or `net.0` for a created one). */
function netError(spec: VirtioNetSpec, e: unknown): BunvmmError {
  const message = e instanceof Error ? e.message : String(e);
  const kind = e instanceof BunvmmError ? e.kind : "host";
  const where =
    spec.net.tap === undefined
      ? `${spec.key} (a TAP bunvmm creates)`
      : `${spec.key}.tap = ${JSON.stringify(spec.net.tap)}`;
  return new BunvmmError(kind, `${where}: ${message}`, { cause: e });
}

/** Gets the entry's TAP: attached (`tap` given) or created; configured as the entry says. */
function openTap(net: NetConfig): Tap {
  const tap = net.tap === undefined ? Tap.open(CREATED_TAP_TEMPLATE) : Tap.open(net.tap, { mustExist: true });
  try {
    if (net.host_mac !== undefined) ip(["link", "set", "dev", tap.name, "address", net.host_mac]);
    if (net.ip !== undefined) {
      const prefix = maskPrefixLength(net.mask ?? DEFAULT_NET_MASK);
      ip(["addr", "replace", `${net.ip}/${prefix}`, "dev", tap.name]);
    }
    if (net.tap === undefined) ip(["link", "set", "dev", tap.name, "up"]);
    return tap;
  } catch (e) {
    tap.close(); // a created TAP goes with its fd
    throw e;
  }
}

/** Everything a virtio-net device does from its spec alone. */
export const virtioNetKind: DeviceKind<VirtioNetSpec> = {
  ...virtioMmioKind("virtio-net"),
  connect(spec, host) {
    let tap: Tap;
    try {
      tap = openTap(spec.net);
    } catch (e) {
      throw netError(spec, e);
    }
    let fds: ReturnType<typeof connectVirtioEventFds>;
    try {
      fds = connectVirtioEventFds(spec, host);
    } catch (e) {
      tap.close();
      throw e;
    }
    const init = virtioBackendInit<NetDeviceInit>(spec, host, fds, {
      tapName: tap.name,
      tapFd: tap.fd,
      mac: spec.net.mac,
      mtu: spec.net.mtu ?? NET_DEFAULT_MTU,
      queueSize: NET_DEFAULT_QUEUE_SIZE,
    });
    const c = new BigInt64Array(spec.counters);
    const read = (word: number) => Number(Atomics.load(c, word));
    return {
      backend: { entry: VIRTIO_WORKER_ENTRY, init },
      counters: () => ({
        ...commonVirtioCounters(spec),
        tap: tap.name,
        rx_bytes: read(NET_RX_BYTES),
        rx_frames: read(NET_RX_FRAMES),
        tx_bytes: read(NET_TX_BYTES),
        tx_frames: read(NET_TX_FRAMES),
        rx_dropped: read(NET_RX_DROPPED),
        tx_dropped: read(NET_TX_MALFORMED) + read(NET_TX_OVERSIZED) + read(NET_TX_ERRORS),
        tx_oversized: read(NET_TX_OVERSIZED),
        tx_malformed: read(NET_TX_MALFORMED),
        tx_errors: read(NET_TX_ERRORS),
        bad_chains: read(NET_BAD_CHAINS),
        tap_failed: read(NET_TAP_FAILED),
      }),
      close: () => {
        fds.close();
        tap.close(); // a TAP bunvmm created disappears with this fd
      },
    };
  },
};

/** The type of one configured network device (`index` is its position in `[[net]]`). */
export function virtioNetType(net: NetConfig, index: number): DeviceType<VirtioNetSpec> {
  return {
    ...virtioNetKind,
    create: (resources) => ({
      ...createVirtioMmio(
        resources,
        "virtio-net",
        net.id,
        NetBackend.deviceInfo(parseMac(net.mac), net.mtu ?? NET_DEFAULT_MTU, NET_DEFAULT_QUEUE_SIZE),
      ),
      kind: "virtio-net",
      net,
      key: `net.${index}`,
    }),
  };
}
