/**
 * bunvmm as a library: create a VM from a TOML path or a config object, boot it, watch its serial
 * console, pause/resume it, snapshot and restore it, and let `await using` tear it down. The CLI is a thin layer over this.
 * @module
 */

export { ApiServer, type ApiServerOptions, startApiServer } from "./api/server.ts";
export { ConfigError, loadConfigFile, parseConfig, type VmConfig } from "./config/index.ts";
export { KvmError } from "./kvm/kvm-error.ts";
export { GuestMemory, GuestMemoryError } from "./memory/guest-memory.ts";
export { SnapshotError } from "./snapshot/snapshot-error.ts";
export type { SnapshotStats } from "./snapshot/writer.ts";
export type { VcpuCounters } from "./vcpu/control-block.ts";
export type { CrashReport } from "./vcpu/crash-report.ts";
export { HostError } from "./vmm/builder.ts";
export { VcpuTimeoutError } from "./vmm/cpu-manager.ts";
export { DeadlineError } from "./vmm/deadline.ts";
export { LOG_LEVEL_NAMES, type LogLevelName } from "./vmm/logger.ts";
export { PayloadError } from "./vmm/payload.ts";
export { SerialConsole, type SerialSink } from "./vmm/serial-console.ts";
export {
  DEMO_CONFIG,
  LifecycleError,
  ResizeError,
  type SerialOption,
  Vm,
  type VmCounters,
  type VmExit,
  type VmExitReason,
  type VmOptions,
  type VmState,
} from "./vmm/vm.ts";
export { WorkerTimeoutError } from "./vmm/worker-pool.ts";
