/**
 * The REST API's errors and how every failure becomes a response: `{"error": "<one line>"}` with the
 * status cloud-hypervisor documents for it (vmm/src/api/openapi/cloud-hypervisor.yaml).
 * @module
 */
import type { ConsolaInstance } from "consola/core";
import { HostError } from "../vmm/builder.ts";
import { DeadlineError } from "../vmm/deadline.ts";
import { LifecycleError, ResizeError } from "../vmm/vm.ts";
import { WorkerTimeoutError } from "../vmm/worker-pool.ts";

/** The JSON body of every error response (bunvmm's; cloud-hypervisor sends an array of strings). */
export interface ErrorResponse {
  error: string;
}

/** A request the API answers with `status` and `{"error": message}` (Hono's HTTPException, smaller). */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
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
  if (e instanceof LifecycleError)
    return jsonResponse(STATUS_REFUSED, { error: e.message } satisfies ErrorResponse);
  if (e instanceof ResizeError)
    return jsonResponse(STATUS_RESIZE_PENDING, { error: e.message } satisfies ErrorResponse);
  // A pause that timed out was rolled back (the VM is still Running); the message names the stuck vCPU
  // or device worker (VcpuTimeoutError is a WorkerTimeoutError).
  if (e instanceof WorkerTimeoutError || e instanceof DeadlineError) {
    log.warn(e.message);
    return jsonResponse(500, { error: e.message } satisfies ErrorResponse);
  }
  if (e instanceof Error) {
    log.error(e);
    return jsonResponse(500, { error: e.message } satisfies ErrorResponse);
  }
  log.error(`non-Error thrown by a route: ${String(e)}`);
  return jsonResponse(500, { error: String(e) } satisfies ErrorResponse);
}
