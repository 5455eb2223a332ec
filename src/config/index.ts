/**
 * The VM config layer: one TOML file per VM, validated, with cloud-hypervisor's VmConfig names.
 * @module
 */
export { ConfigError, type ConfigIssue } from "./config-error.ts";
export {
  CMDLINE_MAX,
  DEFAULT_LIFECYCLE_TIMEOUT_MS,
  DEFAULT_MEMORY_SIZE,
  DEFAULT_VCPUS,
  LIFECYCLE_TIMEOUT_MAX_MS,
  LIFECYCLE_TIMEOUT_MIN_MS,
  MAX_VCPUS,
  MEMORY_SIZE_ALIGN,
  MEMORY_SIZE_MAX,
  MEMORY_SIZE_MIN,
  MIN_VCPUS,
  SOCKET_PATH_MAX,
} from "./limits.ts";
export { loadConfigFile, type ParseConfigOptions, parseConfig, parseMemorySize } from "./load.ts";
export {
  checkLifecycleTimeout,
  LIFECYCLE_TIMEOUT,
  LifecycleTimeoutSchema,
  PAYLOAD_FORMATS,
  SERIAL_MODES,
  type VmConfig,
  VmConfigSchema,
} from "./schema.ts";
