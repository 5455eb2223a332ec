/**
 * The REST API: cloud-hypervisor's `/api/v1/` endpoints over HTTP/1.1 on a Unix socket (never TCP),
 * served by Bun.serve for one Vm. docs/api.md says how to use it; docs/openapi.yaml what it serves.
 *
 * Threads: VMM thread (Bun's event loop). Each request is its own task: a handler awaits only its own
 * body read (bounded, request-body.ts) and then its Vm operation, which the Vm serialises ([serialised-lifecycle]). No
 * lock or queue here, so a slow or vanished client holds nothing another request needs ([no-wait-holding], [vmm-never-blocks]),
 * and every wait is bounded ([bounded-waits]): body reads by BODY_READ_TIMEOUT_MS, Vm operations by the Vm's
 * own vCPU deadlines, close() by CLOSE_TIMEOUT_MS. Checked by test/api/server.test.ts (the 100-client
 * storm, half requests, vanished clients).
 * @module
 */
import { resolve } from "node:path";
import type { ConsolaInstance } from "consola/core";
import { within } from "../vmm/deadline.ts";
import { createLogger, type LogLevelName } from "../vmm/logger.ts";
import type { Vm } from "../vmm/vm.ts";
import { ApiError, ApiSocketError, errorResponse } from "./api-error.ts";
import { BODY_LIMIT_BYTES, BODY_READ_TIMEOUT_MS, readBody } from "./request-body.ts";
import { API_ROOT, ROUTES, type RouteContext } from "./routes/index.ts";
import {
  claimSocketPath,
  errorCode,
  listenPrivately,
  removeOwnSocket,
  type SocketIdentity,
  socketIdentity,
} from "./socket-file.ts";

/** How long close() lets in-flight requests finish before it closes their connections. */
export const CLOSE_TIMEOUT_MS = 2000;

export interface ApiServerOptions {
  /** Path of the Unix socket to serve on; relative paths are taken from the current directory. */
  socket: string;
  /** How much the server logs on stderr; default "info". Ignored with `logger`. */
  logLevel?: LogLevelName;
  /** A consola instance to log through instead of bunvmm's own stderr logger. */
  logger?: ConsolaInstance;
  /** Largest request body; default BODY_LIMIT_BYTES (64 KiB). */
  bodyLimit?: number;
  /** How long a client may take to send its body; default BODY_READ_TIMEOUT_MS. */
  bodyTimeoutMs?: number;
}

/** A running API server for one Vm. `close()` (or `await using`) stops it and removes its socket. */
export class ApiServer implements AsyncDisposable {
  /** Resolves once the server has stopped and its socket file is gone (after close() or vmm.shutdown). */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private closing: Promise<void> | undefined;
  private server!: Bun.Server<undefined>;
  private identity: SocketIdentity | undefined;
  private readonly context: RouteContext;
  private readonly onExit = () => removeOwnSocket(this.socket, this.identity);

  private constructor(
    readonly vm: Vm,
    /** The socket's absolute path. */
    readonly socket: string,
    private readonly log: ConsolaInstance,
    private readonly bodyLimit: number,
    private readonly bodyTimeoutMs: number,
  ) {
    this.closed = new Promise((r) => {
      this.resolveClosed = r;
    });
    this.context = { vm, log, closeServer: () => void this.close() };
  }

  /**
   * Serves the API for `vm` on `options.socket`, created with mode 0600. A stale socket file (nothing
   * answers) is replaced; a live one never is.
   * @throws {ApiSocketError} "api socket /x is in use by another process", or why it cannot listen.
   */
  static async start(vm: Vm, options: ApiServerOptions): Promise<ApiServer> {
    if (options.socket === "") throw new ApiSocketError(options.socket, "api socket path is empty");
    const log = options.logger ?? createLogger(options.logLevel);
    const api = new ApiServer(
      vm,
      resolve(options.socket),
      log,
      options.bodyLimit ?? BODY_LIMIT_BYTES,
      options.bodyTimeoutMs ?? BODY_READ_TIMEOUT_MS,
    );
    await claimSocketPath(api.socket);
    try {
      api.server = listenPrivately(() =>
        Bun.serve({
          unix: api.socket,
          fetch: (req) => api.handle(req),
          error: (e) => errorResponse(e, log),
        }),
      );
    } catch (e) {
      const why =
        errorCode(e) === "EADDRINUSE"
          ? "is in use by another process"
          : `cannot be listened on: ${String(e)}`;
      throw new ApiSocketError(api.socket, `api socket ${api.socket} ${why}`);
    }
    api.identity = socketIdentity(api.socket);
    process.on("exit", api.onExit); // last resort if the process ends without close()
    log.info(`REST API on ${api.socket}`);
    return api;
  }

  /** Stops serving: in-flight requests get CLOSE_TIMEOUT_MS to finish; removes the socket. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const finished = await within(
        this.server.stop(false).then(() => true),
        CLOSE_TIMEOUT_MS,
      );
      if (finished === undefined) {
        this.log.warn(`API requests still in flight after ${CLOSE_TIMEOUT_MS} ms; closing their connections`);
        await this.server.stop(true);
      }
      removeOwnSocket(this.socket, this.identity);
      process.off("exit", this.onExit);
      this.resolveClosed();
    })();
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async handle(req: Request): Promise<Response> {
    try {
      const { pathname } = new URL(req.url);
      const name = pathname.startsWith(`${API_ROOT}/`) ? pathname.slice(API_ROOT.length + 1) : undefined;
      const route = name !== undefined && Object.hasOwn(ROUTES, name) ? ROUTES[name] : undefined;
      if (name === undefined || route === undefined) throw new ApiError(404, `no such endpoint: ${pathname}`);
      if (req.method !== route.method) {
        throw new ApiError(405, `${name} takes ${route.method}, not ${req.method}`, { Allow: route.method });
      }
      const body = await readBody(req, this.bodyLimit, this.bodyTimeoutMs);
      if (!route.takesBody && body.byteLength > 0) throw new ApiError(400, `${name} takes no request body`);
      this.log.debug(`API ${req.method} ${name}`);
      return await route.handle(this.context, body);
    } catch (e) {
      return errorResponse(e, this.log);
    }
  }
}

/** Serves the REST API for `vm`; see ApiServer.start. */
export function startApiServer(vm: Vm, options: ApiServerOptions): Promise<ApiServer> {
  return ApiServer.start(vm, options);
}
