/**
 * The machine's devices, in one list: each entry is a device type (devices/device-type.ts) that claims
 * its resources, builds its front-end in every vCPU worker, adds its AML to the DSDT and saves its state.
 * The order is the DSDT's order (a method's callee before its caller: the GED's `_EVT` calls into CPUS
 * and PWRB, so the GED comes last) and the order in which resources are claimed.
 *
 * Configured devices (virtio disks, rng, console, net, vsock) follow the platform's, one type per config
 * entry, made by `machineDevices(config)`: disks in config order, then the rng, then the console, then
 * the network devices in config order, then vsock. Workers
 * find each spec's kind in DEVICE_KINDS, which needs no config.
 *
 * To add a device: write its type in a file (or folder) under devices/ and add one line here (to
 * PLATFORM_DEVICES, or to machineDevices and DEVICE_KINDS for a configured one), and its front-end's
 * line to devices/frontends.ts.
 *
 * Threads: `createDevices` and `dsdtContent` on the VMM thread. vCPU workers do not load this module
 * (it imports every type, with its AML and back-end): they attach through devices/frontends.ts, whose
 * table holds the same `attach` functions; `attachDevices` is for tests with their own registry.
 */
import type { Aml } from "../src/arch/x86_64/acpi/aml.ts";
import type { DsdtContent } from "../src/arch/x86_64/acpi/dsdt.ts";
import { COM1_GSI, COM1_PORT } from "../src/arch/x86_64/layout.ts";
import type { VmConfig } from "../src/config/schema.ts";
import { acpiGedType } from "./acpi-ged-type.ts";
import { acpiPowerType } from "./acpi-power-type.ts";
import { Bus } from "./bus.ts";
import { cpuHotplugType } from "./cpu-hotplug.ts";
import type {
  AmlEnv,
  Buses,
  DeviceContext,
  DeviceKind,
  DeviceSpecBase,
  DeviceType,
  PlatformEnv,
} from "./device-type.ts";
import { COM1_NAME } from "./dsdt-paths.ts";
import { i8042Type } from "./i8042.ts";
import type { ResourceAllocator } from "./resource-allocator.ts";
import { serial8250Type } from "./serial-8250-type.ts";
import { type VirtioBlkSpec, virtioBlkKind, virtioBlkType } from "./virtio/blk-device.ts";
import { type VirtioConsoleSpec, virtioConsoleKind, virtioConsoleType } from "./virtio/console-device.ts";
import { type VirtioNetSpec, virtioNetKind, virtioNetType } from "./virtio/net-device.ts";
import { type VirtioRngSpec, virtioRngKind, virtioRngType } from "./virtio/rng-device.ts";
import { type VirtioVsockSpec, virtioVsockKind, virtioVsockType } from "./virtio/vsock-device.ts";

/** Every device of a bunvmm x86_64 machine. */
export const PLATFORM_DEVICES = [
  serial8250Type(COM1_NAME, COM1_PORT, COM1_GSI),
  i8042Type,
  acpiPowerType,
  cpuHotplugType,
  acpiGedType,
] as const;

/** Every kind a machine's spec can have: what a worker attaches from without the config. */
export const DEVICE_KINDS: readonly DeviceKind[] = [
  ...PLATFORM_DEVICES,
  virtioBlkKind,
  virtioRngKind,
  virtioConsoleKind,
  virtioNetKind,
  virtioVsockKind,
] as readonly DeviceKind[];

/** The config sections that add devices. */
export type DeviceConfig = Pick<VmConfig, "disks" | "rng" | "console" | "vsock"> &
  Partial<Pick<VmConfig, "net">>;

/** The machine's device types for a config: the platform's, then one per configured virtio device. */
export function machineDevices(config: DeviceConfig): DeviceRegistry {
  return [
    ...PLATFORM_DEVICES,
    ...config.disks.map((disk, index) => virtioBlkType(disk, index)),
    ...(config.rng ? [virtioRngType(config.rng)] : []),
    ...(config.console.mode === "off" ? [] : [virtioConsoleType(config.console)]),
    ...(config.net ?? []).map((net, index) => virtioNetType(net, index)),
    ...(config.vsock ? [virtioVsockType(config.vsock)] : []),
  ] as DeviceRegistry;
}

/** A list of device types, the platform's or a test's. */
export type DeviceRegistry = readonly DeviceType[];

/** The spec a registry's type creates. */
export type SpecOf<T> = T extends DeviceType<infer S> ? S : never;
/** The specs of a machine's devices, as vCPU workers receive them. */
export type DeviceSpec =
  | SpecOf<(typeof PLATFORM_DEVICES)[number]>
  | VirtioBlkSpec
  | VirtioRngSpec
  | VirtioConsoleSpec
  | VirtioNetSpec
  | VirtioVsockSpec;

/** The registry entry that attaches specs of `kind`. */
export function deviceTypeOf(kind: string, registry: readonly DeviceKind[] = DEVICE_KINDS): DeviceKind {
  const type = registry.find((t) => t.kind === kind);
  if (!type) throw new Error(`no device type "${kind}" in the registry`);
  return type;
}

/** VMM thread: every device's spec, in registry order, resources claimed from `resources`. */
export function createDevices<R extends DeviceRegistry>(
  registry: R,
  resources: ResourceAllocator,
  env: PlatformEnv,
): SpecOf<R[number]>[] {
  return registry.map((type) => type.create(resources, env)) as SpecOf<R[number]>[];
}

/** A vCPU worker: both buses, each spec's front-end attached by its type. */
export function attachDevices(
  specs: readonly DeviceSpecBase[],
  ctx: DeviceContext,
  registry: readonly DeviceKind[] = DEVICE_KINDS,
): Buses {
  const buses: Buses = { pio: new Bus("pio"), mmio: new Bus("mmio") };
  for (const spec of specs) deviceTypeOf(spec.kind, registry).attach(spec, ctx, buses);
  return buses;
}

/** The DSDT's content: each device's `\_SB` objects in spec order, then the root objects. */
export function dsdtContent(
  specs: readonly DeviceSpecBase[],
  env: AmlEnv,
  registry: readonly DeviceKind[] = DEVICE_KINDS,
): DsdtContent {
  const systemBus: Aml[] = [];
  const root: Aml[] = [];
  for (const spec of specs) {
    const aml = deviceTypeOf(spec.kind, registry).aml?.(spec, env);
    systemBus.push(...(aml?.systemBus ?? []));
    root.push(...(aml?.root ?? []));
  }
  return { systemBus, root };
}
