/**
 * What a vCPU worker attaches, by device kind: each kind's register front-end, and nothing else. A
 * device type also carries its resources, its AML, its save/restore and maybe a back-end; a vCPU worker
 * runs none of them, and every module it loads costs memory in every vCPU (~0.3 MiB a worker for the
 * AML builders alone, docs/performance.md). So each kind's `attach` lives in a module that imports no
 * AML and no back-end (the register class, its shared state, the attach function), its type in another
 * (`serial-8250.ts` / `serial-8250-type.ts`), and this table names the front-ends only.
 * test/vcpu/worker-graph.test.ts checks what the vCPU worker's module graph holds.
 *
 * To add a device: its front-end module exports `attachX(spec, ctx, buses)`; its type's `attach` is
 * that same function; add one line here. A device worker's entry follows the same rule for its side:
 * it imports the back-end's module, not the type's.
 *
 * Threads: every vCPU worker (the table is also read by tests on the VMM thread).
 */
import { attachAcpiGed } from "./acpi-ged.ts";
import { attachAcpiPower } from "./acpi-power.ts";
import { Bus } from "./bus.ts";
import { attachCpuHotplug } from "./cpu-hotplug-controller.ts";
import type { Buses, DeviceContext, DeviceSpecBase } from "./device-type.ts";
import { attachI8042 } from "./i8042.ts";
import { attachSerial8250 } from "./serial-8250.ts";
import { attachVirtioMmio } from "./virtio/mmio-transport.ts";

/** Inserts a kind's register front-end(s) on the buses, over a spec of that kind. */
// biome-ignore lint/suspicious/noExplicitAny: each entry takes its own kind's spec; the table is keyed by kind
type Attach = (spec: any, ctx: DeviceContext, buses: Buses) => void;

/** Every device kind's front-end; the keys are DeviceKind.kind (devices/registry.ts, DEVICE_KINDS). */
export const DEVICE_FRONTENDS: Readonly<Record<string, Attach>> = {
  "serial-8250": attachSerial8250,
  i8042: attachI8042,
  "acpi-power": attachAcpiPower,
  "cpu-hotplug": attachCpuHotplug,
  "acpi-ged": attachAcpiGed,
  "virtio-blk": attachVirtioMmio,
  "virtio-rng": attachVirtioMmio,
  "virtio-console": attachVirtioMmio,
  "virtio-net": attachVirtioMmio,
  "virtio-vsock": attachVirtioMmio,
};

/** A vCPU worker: both buses, each spec's front-end attached. */
export function attachFrontends(specs: readonly DeviceSpecBase[], ctx: DeviceContext): Buses {
  const buses: Buses = { pio: new Bus("pio"), mmio: new Bus("mmio") };
  for (const spec of specs) {
    const attach = DEVICE_FRONTENDS[spec.kind];
    if (!attach) throw new Error(`no front-end for device kind "${spec.kind}" (devices/frontends.ts)`);
    attach(spec, ctx, buses);
  }
  return buses;
}
