/**
 * The API socket's file: claimed without clobbering a live one, created 0600, and removed only if it is
 * still ours.
 *
 * Threads: VMM thread. The one wait (a connect to see whether something answers) is bounded by
 * PROBE_TIMEOUT_MS ([bounded-waits]).
 * @module
 */
import { lstatSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { SOCKET_PATH_MAX } from "../config/index.ts";
import { within } from "../vmm/deadline.ts";
import { ApiSocketError } from "./api-error.ts";

/** A connect to a Unix socket is answered or refused at once; this only bounds a wedged peer. */
const PROBE_TIMEOUT_MS = 1000;

/** Identifies one socket file, so that we never remove a file someone else put at our path. */
export interface SocketIdentity {
  dev: number;
  ino: number;
}

/**
 * Makes `path` free to listen on: nothing there, or a stale socket (connection refused), which is removed.
 * @throws {ApiSocketError} when something answers on it, when it is not a socket, or the path is too long.
 */
export async function claimSocketPath(path: string): Promise<void> {
  const length = Buffer.byteLength(path);
  if (length > SOCKET_PATH_MAX) {
    throw new ApiSocketError(
      path,
      `api socket path is too long (${length} bytes, at most ${SOCKET_PATH_MAX}): ${path}`,
    );
  }
  checkDirectory(path);
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (e) {
    if (errorCode(e) === "ENOENT") return;
    throw new ApiSocketError(path, `api socket ${path}: ${errorText(e)}`);
  }
  if (!isSocket) throw new ApiSocketError(path, `api socket ${path} exists and is not a socket`);
  if (await somethingAnswers(path))
    throw new ApiSocketError(path, `api socket ${path} is in use by another process`);
  try {
    unlinkSync(path); // stale: its server is gone
  } catch (e) {
    if (errorCode(e) !== "ENOENT")
      throw new ApiSocketError(path, `cannot remove the stale api socket ${path}: ${errorText(e)}`);
  }
}

/** The socket's directory must exist: otherwise listen() fails with a bare ENOENT. */
function checkDirectory(path: string): void {
  const dir = dirname(path);
  try {
    if (statSync(dir).isDirectory()) return;
  } catch (e) {
    const code = errorCode(e);
    if (code === "ENOENT" || code === "ENOTDIR")
      throw new ApiSocketError(path, `api socket ${path}: directory not found: ${dir}`);
    throw new ApiSocketError(path, `api socket ${path}: ${dir}: ${errorText(e)}`);
  }
  throw new ApiSocketError(path, `api socket ${path}: not a directory: ${dir}`);
}

/**
 * True unless a connect is refused (or the file vanished): anything else, a wedged peer included,
 * counts as in use, because clobbering a live socket is the one thing we must not do.
 */
async function somethingAnswers(path: string): Promise<boolean> {
  const attempt = Bun.connect({ unix: path, socket: { data() {} } }).then(
    (socket) => {
      socket.end();
      return true;
    },
    (e: unknown) => !["ECONNREFUSED", "ENOENT"].includes(errorCode(e) ?? ""),
  );
  return (await within(attempt, PROBE_TIMEOUT_MS)) ?? true;
}

/** Runs `listen` with umask 0177 so the socket is born 0600 (no window in which others may connect). */
export function listenPrivately<T>(listen: () => T): T {
  const previous = process.umask(0o177);
  try {
    return listen();
  } finally {
    process.umask(previous);
  }
}

export function socketIdentity(path: string): SocketIdentity | undefined {
  try {
    const st = lstatSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/** Removes `path` if it is still the socket we created (synchronous: also runs from process "exit"). */
export function removeOwnSocket(path: string, ours: SocketIdentity | undefined): void {
  const now = socketIdentity(path);
  if (!ours || !now || now.dev !== ours.dev || now.ino !== ours.ino) return;
  try {
    unlinkSync(path);
  } catch {
    // Gone already (Bun removes a Unix socket when its server stops).
  }
}

export function errorCode(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e && typeof e.code === "string"
    ? e.code
    : undefined;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
