/**
 * bunvmm as a library: create a VM from a TOML path or a config object, boot it, watch its serial
 * console, pause/resume it, and let `await using` tear it down. The CLI is a thin layer over this.
 * @module
 */
export { Vm, DEMO_CONFIG, LifecycleError, ResizeError, type VmCounters, type VmExit, type VmExitReason, type VmOptions, type VmState } from "./vmm/vm.ts";
export { SerialConsole, type SerialSink } from "./vmm/serial-console.ts";
export { DeadlineError } from "./vmm/deadline.ts";
export { VcpuTimeoutError } from "./vmm/cpu-manager.ts";
export { HostError } from "./vmm/builder.ts";
export { PayloadError } from "./vmm/payload.ts";
export { ApiServer, startApiServer } from "./api/server.ts";
export { KvmError } from "./kvm/kvm-error.ts";
export { ConfigError, type VmConfig, loadConfigFile, parseConfig } from "./config/index.ts";
export { GuestMemory, GuestMemoryError } from "./memory/guest-memory.ts";
export type { CrashReport } from "./vcpu/crash-report.ts";
export type { VcpuCounters } from "./vcpu/control-block.ts";
