/**
 * Real clients for the API tests: Bun's fetch over the Unix socket, curl, and raw sockets for
 * misbehaving clients. Every HTTP answer is checked against docs/openapi.yaml. Every wait has a deadline.
 */
import { lstatSync } from "node:fs";
import { waitUntil } from "./guests.ts";
import { API_PREFIX, expectMatchesSpec } from "./openapi.ts";

/** Bound on one request in these tests; a pause answers in milliseconds. */
export const REQUEST_TIMEOUT_MS = 15_000;

export interface ApiAnswer {
  status: number;
  allow: string | null;
  body: string;
  /** The body parsed as JSON (throws when it is not). */
  // biome-ignore lint/suspicious/noExplicitAny: callers name the shape they expect
  json<T = any>(): T;
}

function answer(status: number, allow: string | null, body: string): ApiAnswer {
  return { status, allow, body, json: () => JSON.parse(body) };
}

/** One request with Bun's fetch over `socket`; `body` objects are sent as JSON. */
export async function apiFetch(
  socket: string,
  method: string,
  endpoint: string,
  body?: string | object,
  init: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<ApiAnswer> {
  const path = endpoint.startsWith("/") ? endpoint : `${API_PREFIX}/${endpoint}`;
  const response = await fetch(`http://localhost${path}`, {
    unix: socket,
    method,
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    ...(init.headers ? { headers: init.headers } : {}),
    signal: AbortSignal.timeout(init.timeoutMs ?? REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  expectMatchesSpec({
    method,
    path,
    status: response.status,
    allow: response.headers.get("allow"),
    contentType: response.headers.get("content-type"),
    body: text,
  });
  return answer(response.status, response.headers.get("allow"), text);
}

/** The same with curl, as a user types it: `curl --unix-socket S -X PUT http://localhost/api/v1/vm.pause`. */
export async function curl(
  socket: string,
  method: string,
  endpoint: string,
  body?: string,
): Promise<ApiAnswer> {
  const path = `${API_PREFIX}/${endpoint}`;
  const argv = [
    "curl",
    "-sS",
    "-i",
    "--max-time",
    String(REQUEST_TIMEOUT_MS / 1000),
    "--unix-socket",
    socket,
    "-X",
    method,
  ];
  if (body !== undefined) argv.push("-H", "Content-Type: application/json", "--data-binary", body);
  argv.push(`http://localhost${path}`);
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), REQUEST_TIMEOUT_MS + 5000); // deadline
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(timer);
  if (proc.exitCode !== 0) throw new Error(`curl ${method} ${path} failed (${proc.exitCode}): ${err.trim()}`);
  const split = out.indexOf("\r\n\r\n");
  const head = out.slice(0, split).split("\r\n");
  const text = out.slice(split + 4);
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head[0] ?? "")?.[1]);
  const header = (name: string) =>
    head
      .find((l) => l.toLowerCase().startsWith(`${name}:`))
      ?.slice(name.length + 1)
      .trim() ?? null;
  expectMatchesSpec({
    method,
    path,
    status,
    allow: header("allow"),
    contentType: header("content-type"),
    body: text,
  });
  return answer(status, header("allow"), text);
}

/** Checks a raw HTTP/1.1 answer (status line, headers, body) against the document; returns its status. */
export function expectRawMatchesSpec(method: string, path: string, raw: string): number {
  const split = raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split).split("\r\n");
  const header = (name: string) =>
    head
      .find((l) => l.toLowerCase().startsWith(`${name}:`))
      ?.slice(name.length + 1)
      .trim() ?? null;
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head[0] ?? "")?.[1]);
  expectMatchesSpec({
    method,
    path,
    status,
    allow: header("allow"),
    contentType: header("content-type"),
    body: raw.slice(split + 4),
  });
  return status;
}

/** A raw connection: write whatever bytes, read whatever comes back, close when told. */
export interface RawClient {
  write(text: string): void;
  /** Everything received so far. */
  readonly received: () => string;
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>;
  close(): void;
}

export async function rawClient(socket: string): Promise<RawClient> {
  let received = "";
  let onClose!: () => void;
  const closed = new Promise<void>((r) => {
    onClose = r;
  });
  const conn = await Bun.connect({
    unix: socket,
    socket: {
      data(_s, data) {
        received += data.toString();
      },
      close: () => onClose(),
      error: () => onClose(),
    },
  });
  return {
    write: (text) => void conn.write(text),
    received: () => received,
    closed,
    close: () => conn.end(),
  };
}

export function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

/** Resolves once something answers vmm.ping on `socket`. */
export async function waitForApi(socket: string, timeoutMs = 30_000): Promise<void> {
  await waitUntil(
    async () => {
      if (!isSocket(socket)) return false;
      try {
        const r = await fetch("http://localhost/api/v1/vmm.ping", {
          unix: socket,
          signal: AbortSignal.timeout(2000),
        });
        await r.text();
        return r.status === 200;
      } catch {
        return false;
      }
    },
    `the API on ${socket}`,
    timeoutMs,
  );
}
