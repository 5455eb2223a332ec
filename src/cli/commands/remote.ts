/**
 * `bunvmm remote --api-socket PATH COMMAND [N]`: drives a running bunvmm through its REST API, like
 * cloud-hypervisor's ch-remote. Reads print the JSON answer on stdout; actions print one line. Any
 * failure is one line on stderr and exit 1, with the server's own message when it sent one.
 */
import { defineCommand } from "citty";
import { createLogger, type LogLevelName } from "../../vmm/logger.ts";
import { EXIT_ERROR } from "../errors.ts";
import { sharedArgs } from "./shared-args.ts";

/** Bound on one request; a reboot or a pause of many vCPUs answers well within it. */
const REMOTE_TIMEOUT_MS = 30_000;

interface RemoteCommand {
  method: "GET" | "PUT";
  endpoint: string;
  /** The line printed on success for an action; reads print their JSON instead. */
  done?: (value: number | undefined) => string;
  /** Takes the vCPU count (resize). */
  takesCount?: boolean;
}

/** ch-remote's command names. */
const COMMANDS: Readonly<Record<string, RemoteCommand>> = {
  ping: { method: "GET", endpoint: "vmm.ping" },
  info: { method: "GET", endpoint: "vm.info" },
  counters: { method: "GET", endpoint: "vm.counters" },
  pause: { method: "PUT", endpoint: "vm.pause", done: () => "paused" },
  resume: { method: "PUT", endpoint: "vm.resume", done: () => "resumed" },
  resize: { method: "PUT", endpoint: "vm.resize", takesCount: true, done: (n) => `resized to ${n} vCPU(s)` },
  reboot: { method: "PUT", endpoint: "vm.reboot", done: () => "rebooted" },
  shutdown: { method: "PUT", endpoint: "vm.shutdown", done: () => "shut down" },
  "power-button": { method: "PUT", endpoint: "vm.power-button", done: () => "power button pressed" },
  "shutdown-vmm": { method: "PUT", endpoint: "vmm.shutdown", done: () => "bunvmm shut down" },
};

/** A failure whose message is the whole story: printed as one line. */
class RemoteError extends Error {
  override readonly name = "RemoteError";
}

export const remoteCommand = defineCommand({
  meta: { name: "remote", description: "Control a running bunvmm through its REST API socket" },
  args: {
    command: {
      type: "positional",
      required: true,
      description: `One of: ${Object.keys(COMMANDS)
        .map((c) => (COMMANDS[c]!.takesCount ? `${c} N` : c))
        .join(", ")}`,
    },
    count: { type: "positional", required: false, description: "The vCPU count, for resize" },
    "api-socket": {
      type: "string",
      required: true,
      valueHint: "PATH",
      description: "The bunvmm's API socket",
    },
    ...sharedArgs,
  },
  async run({ args }) {
    const log = createLogger(args["log-level"] as LogLevelName);
    try {
      const command = COMMANDS[args.command];
      if (!Object.hasOwn(COMMANDS, args.command) || !command) {
        throw new RemoteError(
          `unknown remote command ${JSON.stringify(args.command)}; expected one of: ${Object.keys(COMMANDS).join(", ")}`,
        );
      }
      const count = parseCount(args.command, command, args.count);
      const body = count === undefined ? undefined : JSON.stringify({ desired_vcpus: count });
      const answer = await request(args["api-socket"], command, body);
      if (command.done) process.stdout.write(`${command.done(count)}\n`);
      else process.stdout.write(`${JSON.stringify(JSON.parse(answer), null, 2)}\n`);
    } catch (e) {
      if (!(e instanceof RemoteError)) throw e;
      log.error(e.message);
      process.exitCode = EXIT_ERROR;
    }
  },
});

function parseCount(name: string, command: RemoteCommand, given: string | undefined): number | undefined {
  if (!command.takesCount) {
    if (given !== undefined)
      throw new RemoteError(`${name} takes no argument (got ${JSON.stringify(given)})`);
    return undefined;
  }
  if (given === undefined || !/^[0-9]+$/.test(given)) {
    throw new RemoteError(`${name} needs a vCPU count: bunvmm remote --api-socket PATH ${name} N`);
  }
  return Number(given);
}

/** Sends one request; resolves with the answer's body. @throws {RemoteError} with one line. */
async function request(socket: string, command: RemoteCommand, body: string | undefined): Promise<string> {
  let response: Response;
  try {
    response = await fetch(`http://localhost/api/v1/${command.endpoint}`, {
      unix: socket,
      method: command.method,
      ...(body === undefined ? {} : { body, headers: { "Content-Type": "application/json" } }),
      signal: AbortSignal.timeout(REMOTE_TIMEOUT_MS),
    });
  } catch (e) {
    const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : "";
    if (code === "ENOENT" || code === "ECONNREFUSED")
      throw new RemoteError(`no bunvmm is listening on ${socket}`);
    if (e instanceof Error && e.name === "TimeoutError") {
      throw new RemoteError(`no answer from ${socket} within ${REMOTE_TIMEOUT_MS} ms`);
    }
    throw new RemoteError(`cannot reach ${socket}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const text = await response.text();
  if (response.ok) return text;
  throw new RemoteError(serverMessage(response, text));
}

/** The server's `{"error": …}` message, or the status when the body is not ours. */
function serverMessage(response: Response, text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (
      typeof parsed === "object" &&
      parsed !== null &&
      "error" in parsed &&
      typeof parsed.error === "string"
    ) {
      return parsed.error;
    }
  } catch {
    // not JSON: fall through
  }
  return `the server answered ${response.status} ${response.statusText}`.trimEnd();
}
