/**
 * The virtio-console device type, present unless `console.mode` is "off": one port, whose output (the
 * transmit queue) goes to stdout (`tty`) or a file (`file`). Input: none yet; stdin stays with COM1 in
 * every mode (the receive queue exists but gets no bytes), so a Linux guest uses `hvc0` for output and
 * `ttyS0` for a login. `connect` opens the file on the VMM thread (created or truncated, like the serial
 * file; appended to when the VM is restored from a snapshot, so its output continues); the worker writes
 * each transmit chain's bytes to it.
 *
 * Threads: VMM thread, except `attach` (every vCPU worker); the back-end runs in src/vmm/virtio-worker.ts.
 */
import { closeSync, openSync } from "node:fs";
import type { VmConfig } from "../../src/config/schema.ts";
import { BunvmmError } from "../../src/errors.ts";
import type { DeviceKind, DeviceType } from "../device-type.ts";
import { CONSOLE_BYTES_DROPPED, CONSOLE_BYTES_OUT, consoleInfo } from "./console.ts";

export { CONSOLE_BYTES_DROPPED, CONSOLE_BYTES_OUT };

import {
  commonVirtioCounters,
  connectVirtioEventFds,
  createVirtioMmio,
  VIRTIO_WORKER_ENTRY,
  type VirtioMmioSpec,
  virtioBackendInit,
  virtioMmioKind,
} from "./mmio-device.ts";

/** The console device's name in counters and messages. */
export const CONSOLE_DEVICE_NAME = "console0";
/** stdout's descriptor: the tty mode's output. */
const STDOUT_FD = 1;

export interface VirtioConsoleSpec extends VirtioMmioSpec {
  readonly kind: "virtio-console";
  readonly console: VmConfig["console"];
}

/** What the worker starts the console back-end from: where output goes. */
export interface ConsoleDeviceInit {
  readonly outFd: number;
}

export const virtioConsoleKind: DeviceKind<VirtioConsoleSpec> = {
  ...virtioMmioKind("virtio-console"),
  connect(spec, host) {
    let outFd = STDOUT_FD;
    if (spec.console.mode === "file") {
      try {
        // A restored VM's console output continues the file its snapshotted VM wrote.
        outFd = openSync(spec.console.file!, host.restoring ? "a" : "w");
      } catch (e) {
        throw new BunvmmError(
          "host",
          `console.file = ${JSON.stringify(spec.console.file)}: ${(e as Error).message}`,
        );
      }
    }
    const closeOut = () => {
      if (outFd !== STDOUT_FD) closeSync(outFd);
    };
    let fds: ReturnType<typeof connectVirtioEventFds>;
    try {
      fds = connectVirtioEventFds(spec, host);
    } catch (e) {
      closeOut();
      throw e;
    }
    const init = virtioBackendInit<ConsoleDeviceInit>(spec, host, fds, { outFd });
    const c = new BigInt64Array(spec.counters);
    return {
      backend: { entry: VIRTIO_WORKER_ENTRY, init },
      counters: () => ({
        ...commonVirtioCounters(spec),
        bytes_out: Number(Atomics.load(c, CONSOLE_BYTES_OUT)),
        bytes_dropped: Number(Atomics.load(c, CONSOLE_BYTES_DROPPED)),
      }),
      close: () => {
        fds.close();
        closeOut();
      },
    };
  },
};

/** The type of the console device (only for a mode other than "off"). */
export function virtioConsoleType(console: VmConfig["console"]): DeviceType<VirtioConsoleSpec> {
  return {
    ...virtioConsoleKind,
    create: (resources) => ({
      ...createVirtioMmio(resources, "virtio-console", CONSOLE_DEVICE_NAME, consoleInfo()),
      kind: "virtio-console",
      console,
    }),
  };
}
