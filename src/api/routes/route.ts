/**
 * One REST endpoint: its method and handler. The server does the rest (404, 405 with Allow, the body
 * limit, refusing a body where none is taken, turning thrown errors into responses).
 * @module
 */
import type { ConsolaInstance } from "consola/core";
import type { Vm } from "../../vmm/vm.ts";

export type HttpMethod = "GET" | "PUT";

/** What a handler may use. */
export interface RouteContext {
  readonly vm: Vm;
  readonly log: ConsolaInstance;
  /** Stops the API server once every in-flight answer (this one included) has been sent. */
  closeServer(): void;
}

export interface Route {
  readonly method: HttpMethod;
  /** True when the endpoint reads a JSON body; the others answer 400 to a non-empty one, as cloud-hypervisor does. */
  readonly takesBody?: boolean;
  /** `body` is the raw request body (empty when there is none), already within the size limit. */
  handle(ctx: RouteContext, body: Uint8Array): Promise<Response> | Response;
}

/** 204 No Content: the answer to every successful PUT. */
export function noContent(): Response {
  return new Response(null, { status: 204 });
}
