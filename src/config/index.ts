/**
 * The VM config layer: one TOML file per VM, validated, with cloud-hypervisor's VmConfig names.
 * @module
 */
export { ConfigError, type ConfigIssue } from "./config-error.ts";
export {
  CMDLINE_MAX,
  DEFAULT_MEMORY_SIZE,
  DEFAULT_VCPUS,
  MAX_VCPUS,
  MEMORY_SIZE_ALIGN,
  MEMORY_SIZE_MAX,
  MEMORY_SIZE_MIN,
  MIN_VCPUS,
  SOCKET_PATH_MAX,
} from "./limits.ts";
export { loadConfigFile, type ParseConfigOptions, parseConfig, parseMemorySize } from "./load.ts";
export { PAYLOAD_FORMATS, SERIAL_MODES, type VmConfig, VmConfigSchema } from "./schema.ts";
