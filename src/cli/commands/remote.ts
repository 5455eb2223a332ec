/**
 * `bunvmm remote --api-socket PATH COMMAND [N]`: drives a running bunvmm through its REST API, like
 * cloud-hypervisor's ch-remote (`resize N` or, as ch-remote spells it, `resize --cpus N`). Reads print
 * the JSON answer on stdout; actions print one line. Any failure is one line on stderr and exit 1, with
 * the server's own message when it sent one.
 */
import { defineCommand } from "citty";
import { createLogger, type LogLevelName } from "../../vmm/logger.ts";
import { EXIT_ERROR } from "../errors.ts";
import { sharedArgs } from "./shared-args.ts";

/** Bound on one request; a reboot or a pause of many vCPUs answers well within it. */
const REMOTE_TIMEOUT_MS = 30_000;

export interface RemoteCommand {
  method: "GET" | "PUT";
  endpoint: string;
  /** The line printed on success for an action; reads print their JSON instead. */
  done?: (value: number | undefined) => string;
  /** Takes the vCPU count (resize). */
  takesCount?: boolean;
}

/** A vCPU count as typed: digits only, so "-1", "3.5", "0x3" and "3e0" are refused by name. */
const COUNT_PATTERN = /^[0-9]+$/;
/** What citty makes of a negative number (`resize -1`): a flag named by its digits. */
const NEGATIVE_FLAG_PATTERN = /^-[0-9]/;

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
export class RemoteError extends Error {
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
    cpus: {
      type: "string",
      valueHint: "N",
      description: "The vCPU count, for resize (ch-remote's spelling)",
    },
    "api-socket": {
      type: "string",
      required: true,
      valueHint: "PATH",
      description: "The bunvmm's API socket",
    },
    ...sharedArgs,
  },
  async run({ args, rawArgs }) {
    const log = createLogger(args["log-level"] as LogLevelName);
    try {
      const command = COMMANDS[args.command];
      if (!Object.hasOwn(COMMANDS, args.command) || !command) {
        throw new RemoteError(
          `unknown remote command ${JSON.stringify(args.command)}; expected one of: ${Object.keys(COMMANDS).join(", ")}`,
        );
      }
      const count = parseCount(args.command, command, givenCount(args.count, args.cpus, rawArgs));
      const socket = args["api-socket"];
      if (count !== undefined) {
        // Before the resize: a smaller count only asks the guest to eject, so say what is pending.
        const before = presentVcpus(await request(socket, COMMANDS.info!, undefined));
        await request(socket, command, JSON.stringify({ desired_vcpus: count }));
        process.stdout.write(`${resizeOutcome(before, count)}\n`);
        return;
      }
      const answer = await request(socket, command, undefined);
      if (command.done) process.stdout.write(`${command.done(count)}\n`);
      else process.stdout.write(`${JSON.stringify(JSON.parse(answer), null, 2)}\n`);
    } catch (e) {
      if (!(e instanceof RemoteError)) throw e;
      log.error(e.message);
      process.exitCode = EXIT_ERROR;
    }
  },
});

/**
 * The count as the user typed it: `--cpus N`, the positional N, or a negative number citty took for a
 * flag (`resize -1`), found again in the raw arguments so the error can name it.
 */
function givenCount(
  positional: string | undefined,
  cpus: string | boolean | undefined,
  rawArgs: readonly string[],
): string | undefined {
  if (cpus !== undefined) {
    if (positional !== undefined) {
      throw new RemoteError(`give the vCPU count once: --cpus ${String(cpus)} or ${positional}, not both`);
    }
    return String(cpus);
  }
  return positional ?? rawArgs.find((a) => NEGATIVE_FLAG_PATTERN.test(a));
}

function parseCount(name: string, command: RemoteCommand, given: string | undefined): number | undefined {
  if (!command.takesCount) {
    if (given !== undefined)
      throw new RemoteError(`${name} takes no argument (got ${JSON.stringify(given)})`);
    return undefined;
  }
  if (given === undefined) {
    throw new RemoteError(
      `${name} needs a vCPU count: bunvmm remote --api-socket PATH ${name} N (or --cpus N)`,
    );
  }
  if (!COUNT_PATTERN.test(given)) {
    throw new RemoteError(
      `${name} ${JSON.stringify(given)}: expected a vCPU count, a whole number from 1 to the VM's max_vcpus`,
    );
  }
  return Number(given);
}

/** cpus.boot_vcpus out of a vm.info answer: the vCPUs present (it follows resizes). */
function presentVcpus(infoAnswer: string): number | undefined {
  try {
    const info: unknown = JSON.parse(infoAnswer);
    const n = (info as { config?: { cpus?: { boot_vcpus?: unknown } } }).config?.cpus?.boot_vcpus;
    return typeof n === "number" ? n : undefined;
  } catch {
    return undefined; // not JSON: the resize still runs, its line just cannot say what is pending
  }
}

/** The line for an accepted resize: removals wait for the guest's eject, so they are pending, not done. */
function resizeOutcome(before: number | undefined, count: number): string {
  if (before === undefined || count >= before) return `resized to ${count} vCPU(s)`;
  const removed = Array.from({ length: before - count }, (_, i) => count + i);
  return `resize to ${count} vCPU(s) accepted; removal of vCPU(s) ${removed.join(", ")} is pending until the guest ejects them`;
}

/** Sends one request; resolves with the answer's body. @throws {RemoteError} with one line. */
export async function request(
  socket: string,
  command: RemoteCommand,
  body: string | undefined,
): Promise<string> {
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
