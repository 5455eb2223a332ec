/**
 * The REST API's errors and how every failure becomes a response: `{"error": "<one line>"}` with the
 * status cloud-hypervisor documents for it (vmm/src/api/openapi/cloud-hypervisor.yaml).
 * @module
 */
import type { ConsolaInstance } from "consola/core";
import { BunvmmError, type ErrorKind, isBunvmmError } from "../errors.ts";
import { HostError } from "../vmm/builder.ts";
import { ResizeError } from "../vmm/vm.ts";

/** The JSON body of every error response (bunvmm's; cloud-hypervisor sends an array of strings). */
export interface ErrorResponse {
  error: string;
}

/** A request the API answers with `status` and `{"error": message}` (Hono's HTTPException, smaller). */
export class ApiError extends BunvmmError {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(kindOfStatus(status), message);
  }
}

/** HTTP_INTERNAL_SERVER_ERROR and up are the host's problem; 4xx are the client's request. */
const HTTP_SERVER_ERROR = 500;
/** Statuses that refuse a well-formed request (405 wrong method or state, 409, 429 pending). */
const REFUSAL_STATUSES: ReadonlySet<number> = new Set([405, 409, 429]);

function kindOfStatus(status: number): ErrorKind {
  if (status >= HTTP_SERVER_ERROR) return "host";
  return REFUSAL_STATUSES.has(status) ? "refused" : "input";
}

/**
 * The API socket cannot be served (in use, not a socket, a bad path). A HostError, so the CLI prints its
 * one line ("api socket /x is in use by another process") and exits 1.
 */
export class ApiSocketError extends HostError {
  constructor(
    readonly socket: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * cloud-hypervisor's spec answers 405 for every lifecycle operation the VM's state refuses ("could not
 * pause because it is not booted", "could not resume because it is not paused"), so a LifecycleError is
 * a 405 here too. Its micro-http server sends 500 for the same refusal (InvalidStateTransition is not in
 * `api_error_status_code`); we follow the published spec, which is what clients are written against.
 */
export const STATUS_REFUSED = 405;

/**
 * cloud-hypervisor answers 429 Too Many Requests to a resize while a vCPU removal is still pending
 * (CpuError::VcpuPendingRemovedVcpu). The Vm's ResizeError is that refusal or an out-of-range count; the
 * API checks the range itself (400, routes/vm.ts) before calling resize, so what reaches here is the
 * pending removal.
 */
export const STATUS_RESIZE_PENDING = 429;

/** A JSON response with `status`. */
export function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/**
 * The response for anything a route threw. Refusals and timeouts are expected and log at debug level;
 * anything else is a bunvmm bug: logged in full, answered 500 with its message.
 */
export function errorResponse(e: unknown, log: ConsolaInstance): Response {
  if (e instanceof ApiError)
    return jsonResponse(e.status, { error: e.message } satisfies ErrorResponse, { ...e.headers });
  // ResizeError is a refusal with its own status (the pending removal); every other refusal is a 405.
  if (e instanceof ResizeError)
    return jsonResponse(STATUS_RESIZE_PENDING, { error: e.message } satisfies ErrorResponse);
  if (isBunvmmError(e) && e.kind === "refused")
    return jsonResponse(STATUS_REFUSED, { error: e.message } satisfies ErrorResponse);
  // A pause that timed out was rolled back (the VM is still Running); the message names the stuck vCPU.
  if (isBunvmmError(e) && e.kind === "timeout") {
    log.warn(e.message);
    return jsonResponse(HTTP_SERVER_ERROR, { error: e.message } satisfies ErrorResponse);
  }
  if (e instanceof Error) {
    log.error(e);
    return jsonResponse(HTTP_SERVER_ERROR, { error: e.message } satisfies ErrorResponse);
  }
  log.error(`non-Error thrown by a route: ${String(e)}`);
  return jsonResponse(HTTP_SERVER_ERROR, { error: String(e) } satisfies ErrorResponse);
}
