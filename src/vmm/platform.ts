/**
 * The machine's devices, created from the registry (devices/registry.ts) with resources from one
 * allocator over the pools of src/arch/x86_64/layout.ts, and the ACPI tables that describe them.
 *
 * Threads: VMM thread (and the acpi-tables command, which builds no VM).
 */
import { acpiPowerFadtRegisters } from "../../devices/acpi-power.ts";
import { ByteQueue, createByteQueueBuffer } from "../../devices/byte-queue.ts";
import type { DeviceKind, DeviceSpecBase, PlatformEnv } from "../../devices/device-type.ts";
import {
  createDevices,
  type DeviceConfig,
  type DeviceSpec,
  dsdtContent,
  machineDevices,
} from "../../devices/registry.ts";
import { ResourceAllocator } from "../../devices/resource-allocator.ts";
import { type AcpiTables, type AcpiTablesWindow, buildAcpiTables } from "../arch/x86_64/acpi/tables.ts";
import { checkVcpuCounts, type VcpuCounts } from "../arch/x86_64/acpi/vcpu-counts.ts";
import {
  DEVICE_GSI_FIRST,
  DEVICE_GSI_LAST,
  DEVICE_MMIO_END,
  DEVICE_MMIO_START,
} from "../arch/x86_64/layout.ts";

/** A fresh allocator over the machine's pools. */
export function platformAllocator(): ResourceAllocator {
  return new ResourceAllocator({
    mmioStart: DEVICE_MMIO_START,
    mmioEnd: DEVICE_MMIO_END,
    gsiFirst: DEVICE_GSI_FIRST,
    gsiLast: DEVICE_GSI_LAST,
  });
}

/** No configured devices: the platform alone. */
export const NO_CONFIGURED_DEVICES: DeviceConfig = { disks: [], console: { mode: "off" } };

/** Every device's spec for a config (platform devices, then configured ones), in registry order. */
export function createPlatformDevices(env: PlatformEnv, config = NO_CONFIGURED_DEVICES): DeviceSpec[] {
  return createDevices(machineDevices(config), platformAllocator(), env) as DeviceSpec[];
}

/** The one spec of `kind` among `specs`. */
export function specOf<K extends DeviceSpec["kind"]>(
  specs: readonly DeviceSpecBase[],
  kind: K,
): Extract<DeviceSpec, { kind: K }> {
  const spec = specs.find((s) => s.kind === kind);
  if (!spec) throw new Error(`the platform has no ${kind} device`);
  return spec as Extract<DeviceSpec, { kind: K }>;
}

/**
 * The ACPI tables for these specs: the DSDT from the devices' AML (each spec's type found in `registry`),
 * the FADT at the power registers.
 */
export function acpiTablesFor(
  specs: readonly DeviceSpecBase[],
  counts: VcpuCounts,
  options: { window?: AcpiTablesWindow; registry?: readonly DeviceKind[] } = {},
): AcpiTables {
  checkVcpuCounts(counts);
  return buildAcpiTables(
    {
      ...counts,
      dsdt: dsdtContent(specs, { maxVcpus: counts.maxVcpus }, options.registry),
      power: acpiPowerFadtRegisters(specOf(specs, "acpi-power")),
    },
    options.window,
  );
}

/**
 * The tables a VM with these vCPU counts (and these configured devices) gets, without building one (the
 * acpi-tables command, tests). Creating devices touches no host resource, so disks need not exist.
 */
export function platformAcpiTables(
  counts: VcpuCounts,
  window?: AcpiTablesWindow,
  devices: DeviceConfig = NO_CONFIGURED_DEVICES,
): AcpiTables {
  checkVcpuCounts(counts);
  const serial = { tx: new ByteQueue(createByteQueueBuffer()), rx: new ByteQueue(createByteQueueBuffer()) };
  return acpiTablesFor(createPlatformDevices({ maxVcpus: counts.maxVcpus, serial }, devices), counts, {
    window,
  });
}
