/**
 * The REST API layer: cloud-hypervisor's `/api/v1/` endpoints on a Unix socket for one Vm.
 * @module
 */
export {
  ApiError,
  ApiSocketError,
  type ErrorResponse,
  STATUS_REFUSED,
  STATUS_RESIZE_PENDING,
} from "./api-error.ts";
export { BODY_LIMIT_BYTES, BODY_READ_TIMEOUT_MS } from "./request-body.ts";
export { API_ROOT, ROUTES } from "./routes/index.ts";
export { ApiServer, type ApiServerOptions, CLOSE_TIMEOUT_MS, startApiServer } from "./server.ts";
export type { VmCounters, VmInfo, VmmPingResponse, WireVmConfig } from "./wire.ts";
