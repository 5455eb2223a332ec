/**
 * What the REST API sends, with cloud-hypervisor's schema names (docs/openapi.yaml, a subset of
 * vmm/src/api/openapi/cloud-hypervisor.yaml), built from the library's `Vm`.
 * @module
 */
import * as v from "valibot";
import packageJson from "../../package.json" with { type: "json" };
import type { VmConfig } from "../config/index.ts";
import type { VmCounters as LibraryCounters, Vm, VmState } from "../vmm/vm.ts";

/** cloud-hypervisor's ConsoleMode spelling of our lower-case serial modes. */
const CONSOLE_MODE = { tty: "Tty", file: "File", off: "Off" } as const satisfies Record<
  VmConfig["serial"]["mode"],
  string
>;

/** VmConfig as sent: our config with cloud-hypervisor's names; serial.mode and console.mode in its ConsoleMode spelling. */
export type WireVmConfig = Omit<VmConfig, "serial" | "console"> & {
  serial: { mode: (typeof CONSOLE_MODE)[keyof typeof CONSOLE_MODE]; file?: string };
  console: { mode: (typeof CONSOLE_MODE)[keyof typeof CONSOLE_MODE]; file?: string };
};

/** GET /vmm.ping. */
export interface VmmPingResponse {
  build_version: string;
  version: string;
  pid: number;
  features: string[];
}

/** GET /vm.info. */
export interface VmInfo {
  config: WireVmConfig;
  state: VmState;
  memory_actual_size: number;
}

/** GET /vm.counters: device name ("vcpu0", "serial") to counter name to value. */
export type VmCounters = Record<string, Record<string, number>>;

/** What this VMM can do, in cloud-hypervisor's `features` list sense. */
export const FEATURES = ["kvm"] as const;

export function vmmPing(): VmmPingResponse {
  return {
    build_version: `${packageJson.version} (bun ${Bun.version})`,
    version: packageJson.version,
    pid: process.pid,
    features: [...FEATURES],
  };
}

export function vmInfo(vm: Vm): VmInfo {
  const info = vm.info();
  const { serial, console, ...rest } = structuredClone(info.config);
  return {
    config: {
      ...rest,
      serial: { ...serial, mode: CONSOLE_MODE[serial.mode] },
      console: { ...console, mode: CONSOLE_MODE[console.mode] },
    },
    state: info.state,
    memory_actual_size: info.memory_actual_size,
  };
}

/**
 * One map per vCPU ("vcpu0": exits, io_exits, …, pauses, kicks), then one per other group of the
 * library's counters ("serial": bytes_out, …; "hotplug", "vm"), under the group's name.
 */
export function vmCounters(counters: LibraryCounters): VmCounters {
  const out: VmCounters = {};
  const { vcpus, devices, ...groups } = counters;
  vcpus.forEach((c, i) => {
    out[`vcpu${i}`] = { ...c };
  });
  for (const [name, group] of Object.entries(groups)) out[name] = { ...(group as Record<string, number>) };
  // Configured devices by their names, like cloud-hypervisor's "_disk0"; counters are integers there, so
  // the kind (a string) stays in the library's view.
  for (const [name, device] of Object.entries(devices)) {
    out[name] = Object.fromEntries(
      Object.entries(device).filter((e): e is [string, number] => typeof e[1] === "number"),
    );
  }
  return out;
}

/**
 * The VmResize body. cloud-hypervisor also takes desired_ram and desired_balloon; bunvmm resizes vCPUs
 * only, so those are refused (400) rather than ignored. The upper bound is the VM's cpus.max_vcpus.
 */
export function vmResizeSchema(maxVcpus: number) {
  const count = `an integer from 1 to ${maxVcpus} (cpus.max_vcpus)`;
  return v.pipe(
    v.unknown(),
    v.check(isPlainObject, `a JSON object like {"desired_vcpus": 2}`),
    v.strictObject({
      desired_vcpus: v.pipe(
        v.number(count),
        v.integer(count),
        v.minValue(1, count),
        v.maxValue(maxVcpus, count),
      ),
    }),
  );
}

function isPlainObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
