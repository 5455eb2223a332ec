/**
 * CPU hotplug as a device type: the register block (cpu-hotplug-controller.ts) at its fixed MMIO address,
 * and its DSDT side: `\_SB.PRES`, the controller's register
 * block and the lock around select-then-access, and `\_SB.CPUS`, the processor container with CSTA, CTFY,
 * CEJ0, CSCN and one ACPI0007 device per possible CPU. The register Fields come from CPU_HOTPLUG_FIELDS,
 * the same table the device decodes with. Same register protocol as QEMU's and cloud-hypervisor's AML.
 * @module
 */
import {
  type Aml,
  acquire,
  arg,
  buffer,
  device,
  eisaId,
  FieldAccess,
  FieldUpdate,
  ifThen,
  increment,
  lEqual,
  lLess,
  local,
  method,
  methodCall,
  mutex,
  type NameString,
  name,
  nameString,
  notify,
  ONE,
  operationRegion,
  RegionSpace,
  release,
  returnValue,
  store,
  string,
  whileDo,
  ZERO,
} from "../src/arch/x86_64/acpi/aml.ts";
import { LOCAL_APIC_ENABLED, localApicEntry } from "../src/arch/x86_64/acpi/madt.ts";
import { NOTIFY_DEVICE_CHECK, NOTIFY_EJECT_REQUEST } from "../src/arch/x86_64/acpi/notify-values.ts";
import { registerFields } from "../src/arch/x86_64/acpi/register-fields.ts";
import { memory32Fixed, resourceTemplate } from "../src/arch/x86_64/acpi/resource-template.ts";
import { CPU_HOTPLUG_BASE } from "../src/arch/x86_64/layout.ts";
import {
  attachCpuHotplug,
  CPU_HOTPLUG_CSEL_OFFSET,
  CPU_HOTPLUG_FIELDS,
  CPU_HOTPLUG_SIZE,
  CPU_HOTPLUG_STATUS_OFFSET,
  createCpuHotplugState,
} from "./cpu-hotplug-controller.ts";
import { restoreBuffers, saveBuffers } from "./device-state.ts";
import { type DeviceSpecBase, defineDeviceType } from "./device-type.ts";
import { CPU_CONTAINER_NAME, CPU_HOTPLUG_NAME, CPU_HOTPLUG_PATH } from "./dsdt-paths.ts";

const REGION = "PRST";
const LOCK_NAME = "CPLK";
/** Registers and the lock by full path: CEJ0 is also a method name in CPUS, so a bare name would be wrong. */
const LOCK = nameString(`${CPU_HOTPLUG_PATH}.${LOCK_NAME}`);
const reg = (unit: "CSEL" | "CPEN" | "CINS" | "CRMV" | "CEJ0"): NameString =>
  nameString(`${CPU_HOTPLUG_PATH}.${unit}`);

/** Acquire timeout 0xFFFF: wait forever (the lock is only held across a few register accesses). */
const ACQUIRE_FOREVER = 0xffff;
/** The lock is the only one the methods take, so sync level 0. */
const LOCK_SYNC_LEVEL = 0;
/** _STA value for a present CPU: present, enabled, shown in UI, functioning (ACPI 6.5 §6.3.7). */
export const STA_PRESENT = 0x0f;
const STA_ABSENT = 0;

/**
 * PNP0A06 (generic container) as in QEMU's "CPU Hotplug resources" and cloud-hypervisor's controller: it
 * only claims the MMIO range in _CRS; Linux's ACPI container handler registers it and does nothing more.
 */
const HOTPLUG_HID = "PNP0A06";
const HOTPLUG_UID = "CPU Hotplug Controller";
/** A processor container (ACPI 6.5 §8.4.2.1), compatible with the generic container PNP0A05. */
const CONTAINER_HID = "ACPI0010";
const CONTAINER_CID = "PNP0A05";
/** A processor device (ACPI 6.5 §8.4). */
const PROCESSOR_HID = "ACPI0007";

/** The name of CPU `cpu`'s device: C000, C001 ... C0FE (three hex digits fit 255 CPUs and more). */
export function cpuDeviceName(cpu: number): string {
  return `C${cpu.toString(16).toUpperCase().padStart(3, "0")}`;
}

/**
 * `\_SB.PRES`: the register block as two Fields. CSEL (DWordAcc) is written whole. The status byte is
 * ByteAcc with WriteAsZeros, so writing one bit (CINS = 1 to ack) writes only that bit: Preserve would
 * read the byte first and write back a pending CRMV as an ack.
 */
function hotplugControllerDevice(base: number): Aml {
  return device(CPU_HOTPLUG_NAME, [
    name("_HID", eisaId(HOTPLUG_HID)),
    name("_UID", string(HOTPLUG_UID)),
    name("_CRS", resourceTemplate([memory32Fixed(base, CPU_HOTPLUG_SIZE)])),
    operationRegion(REGION, RegionSpace.SystemMemory, base, CPU_HOTPLUG_SIZE),
    ...registerFields(REGION, CPU_HOTPLUG_FIELDS, [
      { offset: CPU_HOTPLUG_CSEL_OFFSET, flags: { access: FieldAccess.DWord, update: FieldUpdate.Preserve } },
      {
        offset: CPU_HOTPLUG_STATUS_OFFSET,
        flags: { access: FieldAccess.Byte, update: FieldUpdate.WriteAsZeros },
      },
    ]),
    mutex(LOCK_NAME, LOCK_SYNC_LEVEL),
  ]);
}

/** CSTA (cpu): select it, return 0xF if CPEN else 0. */
function cpuStatusMethod(): Aml {
  return method("CSTA", 1, [
    acquire(LOCK, ACQUIRE_FOREVER),
    store(arg(0), reg("CSEL")),
    store(STA_ABSENT, local(0)),
    ifThen(lEqual(reg("CPEN"), ONE), [store(STA_PRESENT, local(0))]),
    release(LOCK),
    returnValue(local(0)),
  ]);
}

/** CTFY (cpu, event): Notify the matching Cxxx device; one If per possible CPU (Notify needs a static name). */
function cpuNotifyMethod(maxVcpus: number): Aml {
  const body: Aml[] = [];
  for (let cpu = 0; cpu < maxVcpus; cpu++)
    body.push(ifThen(lEqual(arg(0), cpu), [notify(cpuDeviceName(cpu), arg(1))]));
  return method("CTFY", 2, body);
}

/** CEJ0 (cpu): select it and write CEJ0; the device ejects it only if the VMM marked it for removal. */
function cpuEjectMethod(): Aml {
  return method("CEJ0", 1, [
    acquire(LOCK, ACQUIRE_FOREVER),
    store(arg(0), reg("CSEL")),
    store(ONE, reg("CEJ0")),
    release(LOCK),
  ]);
}

/** CSCN (): for every possible CPU, notify and ack a pending insert (Device Check) or removal (Eject Request). */
function cpuScanMethod(maxVcpus: number): Aml {
  const cpu = local(0);
  return method("CSCN", 0, [
    acquire(LOCK, ACQUIRE_FOREVER),
    store(ZERO, cpu),
    whileDo(lLess(cpu, maxVcpus), [
      store(cpu, reg("CSEL")),
      ifThen(lEqual(reg("CINS"), ONE), [
        methodCall("CTFY", [cpu, NOTIFY_DEVICE_CHECK]),
        store(ONE, reg("CINS")),
      ]),
      ifThen(lEqual(reg("CRMV"), ONE), [
        methodCall("CTFY", [cpu, NOTIFY_EJECT_REQUEST]),
        store(ONE, reg("CRMV")),
      ]),
      increment(cpu),
    ]),
    release(LOCK),
  ]);
}

/**
 * Processor device Cxxx: _STA from the controller, _MAT = its MADT Local APIC entry with Enabled set (Linux
 * reads the APIC id from _MAT on hot-add), _EJ0 for every CPU but CPU 0 (which is never ejected).
 */
function cpuDevice(cpu: number): Aml {
  const body: Aml[] = [
    name("_HID", string(PROCESSOR_HID)),
    name("_UID", cpu),
    method("_STA", 0, [returnValue(methodCall("CSTA", [cpu]))]),
    name("_MAT", buffer(localApicEntry(cpu, LOCAL_APIC_ENABLED))),
  ];
  if (cpu !== 0) body.push(method("_EJ0", 1, [methodCall("CEJ0", [cpu])]));
  return device(cpuDeviceName(cpu), body);
}

/** `PRES` (registers at `base`) and `CPUS`, to be placed in `\_SB`, for CPUs 0..maxVcpus-1. */
export function cpuHotplugAml(base: number, maxVcpus: number): Aml[] {
  const cpus: Aml[] = [];
  for (let cpu = 0; cpu < maxVcpus; cpu++) cpus.push(cpuDevice(cpu));
  return [
    hotplugControllerDevice(base),
    device(CPU_CONTAINER_NAME, [
      name("_HID", string(CONTAINER_HID)),
      name("_CID", eisaId(CONTAINER_CID)),
      cpuStatusMethod(),
      cpuNotifyMethod(maxVcpus),
      cpuEjectMethod(),
      cpuScanMethod(maxVcpus),
      ...cpus,
    ]),
  ];
}

export interface CpuHotplugSpec extends DeviceSpecBase {
  readonly kind: "cpu-hotplug";
  readonly base: number;
  readonly state: SharedArrayBuffer;
}

/** Layout of saved state: the controller's words (CSEL, counters, STATUS[max], PENDING[max]). */
const CPU_HOTPLUG_STATE_VERSION = 1;
const CPU_HOTPLUG_DEVICE_NAME = "cpu-hotplug";

/** The controller for max_vcpus CPUs at CPU_HOTPLUG_BASE, with `PRES` and `CPUS` in the DSDT. */
export const cpuHotplugType = defineDeviceType<CpuHotplugSpec>({
  kind: "cpu-hotplug",
  create: (resources, env) => ({
    kind: "cpu-hotplug",
    name: CPU_HOTPLUG_DEVICE_NAME,
    base: resources.fixedMmio(CPU_HOTPLUG_DEVICE_NAME, CPU_HOTPLUG_BASE, CPU_HOTPLUG_SIZE).base,
    state: createCpuHotplugState(env.maxVcpus),
  }),
  attach: attachCpuHotplug,
  aml: (spec, env) => ({ systemBus: cpuHotplugAml(spec.base, env.maxVcpus) }),
  save: (spec) => saveBuffers(CPU_HOTPLUG_STATE_VERSION, [spec.state]),
  restore: (spec, state) => restoreBuffers(spec.name, CPU_HOTPLUG_STATE_VERSION, state, [spec.state]),
});
