/**
 * `bunvmm run [CONFIG]`: boots a VM (the built-in demo without CONFIG) and exits when it stops.
 *
 * Every way out ends the VM, removes the API socket and gives the terminal back: the guest powering off
 * or crashing, SIGINT/SIGTERM/SIGHUP, Ctrl-A x on the console, `vmm.shutdown`, and stdout closing under
 * the guest's output (`bunvmm run | head -1`). A stop that hangs anyway is cut off by
 * SHUTDOWN_DEADLINE_MS (longer with a long lifecycle timeout), so a signal always ends the process.
 *
 * Threads: VMM thread (Bun's main thread).
 */
import { resolve } from "node:path";
import { defineCommand } from "citty";
import type { ConsolaInstance } from "consola/core";
import { checkLifecycleTimeout } from "../../config/index.ts";
import { createLogger, type LogLevelName } from "../../vmm/logger.ts";
import type { SerialSinkError } from "../../vmm/serial-console.ts";
import { sinceStart, Vm } from "../../vmm/vm.ts";
import { StdinConsole } from "../console.ts";
import { EXIT_ERROR, EXIT_GUEST_CRASH, EXIT_OK, EXIT_STDOUT_CLOSED } from "../errors.ts";
import { sharedArgs } from "./shared-args.ts";

/** The signals that shut the VM down; SIGHUP is the terminal closing. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * How long a requested stop may take before the process exits anyway. A stop is a bounded vCPU kill
 * and a bounded device-worker kill (the lifecycle timeout each, 1 s by default) plus the API server's
 * close (2 s); this is far past them.
 */
export const SHUTDOWN_DEADLINE_MS = 10_000;

/** The stop deadline for a lifecycle timeout: SHUTDOWN_DEADLINE_MS, or more when both kills could take longer. */
export function shutdownDeadlineMs(lifecycleTimeoutMs: number): number {
  return Math.max(SHUTDOWN_DEADLINE_MS, 2 * lifecycleTimeoutMs + SHUTDOWN_DEADLINE_MS / 2);
}

/** `--lifecycle-timeout-ms`'s text as the config key's value: digits become a number, anything else stays text. */
export function lifecycleTimeoutFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  return checkLifecycleTimeout(/^[0-9]+$/.test(text) ? Number(text) : text, "--lifecycle-timeout-ms");
}

/**
 * The REST API server, loaded only for a VM that serves it: a VM without a socket never loads the
 * server and its routes (~0.4 MiB of RSS, docs/performance.md).
 */
async function startApi(vm: Vm, socket: string, logger: ConsolaInstance) {
  const { startApiServer } = await import("../../api/server.ts");
  return startApiServer(vm, { socket, logger });
}

/** What a failed write to stdout or stderr costs once the VM's console has let go of it: nothing. */
const ignoreStreamError = () => undefined;

/** Logged once when bunvmm takes over a terminal. */
const ESCAPE_NOTE = "the terminal is the guest's console now; Ctrl-A x stops the VM (Ctrl-A h: keys)";

export const runCommand = defineCommand({
  meta: { name: "run", description: "Boot a VM from a TOML config (no config: the built-in demo)" },
  args: {
    config: { type: "positional", required: false, description: "Path to the VM's TOML file" },
    "api-socket": {
      type: "string",
      valueHint: "PATH",
      description: "Serve the REST API on this Unix socket (overrides [api] socket)",
    },
    "lifecycle-timeout-ms": {
      type: "string",
      valueHint: "MS",
      description:
        "How long pause, resume and shutdown wait for the vCPUs, 10 to 60000 (overrides [vmm] lifecycle_timeout_ms; default 1000)",
    },
    ...sharedArgs,
  },
  async run({ args }) {
    const log = createLogger(args["log-level"] as LogLevelName);
    log.debug(`run: command line parsed (${sinceStart()})`);
    const timeoutMs = lifecycleTimeoutFlag(args["lifecycle-timeout-ms"]);
    const vm = await Vm.create(args.config, { logger: log, timeoutMs });
    await superviseVm(vm, { log, socket: args["api-socket"], start: () => vm.boot() });
  },
});

/**
 * Serves a created (or restored) VM until it stops: the API socket, signals, the console, the exit
 * code. `start` boots it (`run`) or resumes it (`restore --resume`); the process lives until the VM
 * stops either way. Shared by `bunvmm run` and `bunvmm restore`.
 */
export async function superviseVm(
  vm: Vm,
  options: { log: ConsolaInstance; socket: string | undefined; start: () => Promise<void> },
): Promise<void> {
  const { log } = options;
  const stopDeadlineMs = shutdownDeadlineMs(vm.config.vmm.lifecycle_timeout_ms);
  const socket = options.socket !== undefined ? resolve(options.socket) : vm.config.api.socket;
  if (socket !== undefined) vm.config.api.socket = socket; // vm.info reports the socket in use
  const api =
    socket === undefined
      ? undefined
      : await startApi(vm, socket, log).catch(async (e: unknown) => {
          await vm.shutdown();
          throw e;
        });

  let deadline: ReturnType<typeof setTimeout> | undefined;
  /** Shuts the VM down once; the process exits at the stop deadline if that hangs. */
  const stop = (why: string, level: "info" | "error" = "info") => {
    log[level](`${why}: shutting the VM down`);
    deadline ??= setTimeout(() => {
      log.error(`the VM did not stop within ${stopDeadlineMs} ms (${why}); exiting anyway`);
      process.exit(EXIT_ERROR); // the console's exit hook gives the terminal back
    }, stopDeadlineMs);
    deadline.unref();
    void vm.shutdown();
  };

  let stdoutFailure: SerialSinkError | undefined;
  vm.serial.onSinkError((e) => {
    if (e.sink.kind === "file") {
      log.error(e.message); // the VM keeps running; its output is counted in bytes_dropped
      return;
    }
    // A closed pipe is the reader saying it has enough, as `| head` does: not an error.
    if (e.code === "EPIPE") {
      stdoutFailure = e;
      stop("stdout was closed");
    } else if (e.code === "EIO" && process.stdout.isTTY) {
      stop("the terminal hung up"); // what SIGHUP says too; whichever comes first stops the VM
    } else {
      stdoutFailure = e;
      stop(e.message, "error");
    }
  });

  const signalHandlers = STOP_SIGNALS.map((signal) => {
    const handler = () => stop(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  // stderr can fail too (a closed terminal), and stdout after the console let go of it (an EPIPE
  // reported late): losing a log line or the last of the output must not end the VMM with a trace.
  for (const stream of [process.stdout, process.stderr]) {
    if (!stream.listeners("error").includes(ignoreStreamError)) stream.on("error", ignoreStreamError);
  }

  const input = new StdinConsole(vm.serial, {
    onQuit: () => stop("Ctrl-A x"),
    onHelp: (line) => process.stderr.write(`${line}\n`), // asked for: shown at any log level
  });
  try {
    const exit = await options.start().then(() => {
      log.debug(`run: vCPU workers started (${sinceStart()})`);
      if (input.interactive) log.info(ESCAPE_NOTE);
      return vm.exited;
    });
    if (exit.reason === "crash") {
      // The whole report at error level, so --log-level warn or error still shows the registers.
      log.error([exit.detail, ...(exit.crash?.registers ?? []).map((line) => `  ${line}`)].join("\n"));
      process.exitCode = EXIT_GUEST_CRASH;
      return;
    }
    log.info(`the VM stopped: ${exit.reason} (${exit.detail})`);
    if (stdoutFailure) process.exitCode = stdoutFailure.code === "EPIPE" ? EXIT_STDOUT_CLOSED : EXIT_ERROR;
    else process.exitCode = EXIT_OK;
  } finally {
    input.detach(); // the terminal is back before anything else is printed
    await api?.close(); // the socket goes whichever way the VM ends (signals included)
    for (const [signal, handler] of signalHandlers) process.off(signal, handler);
    clearTimeout(deadline);
  }
}
