/** `bunvmm run [CONFIG]`: boots a VM (the built-in demo without CONFIG) and exits when it stops. */
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { startApiServer } from "../../api/server.ts";
import { createLogger, type LogLevelName } from "../../vmm/logger.ts";
import { Vm } from "../../vmm/vm.ts";
import { EXIT_GUEST_CRASH, EXIT_OK } from "../errors.ts";
import { sharedArgs } from "./shared-args.ts";

export const runCommand = defineCommand({
  meta: { name: "run", description: "Boot a VM from a TOML config (no config: the built-in demo)" },
  args: {
    config: { type: "positional", required: false, description: "Path to the VM's TOML file" },
    "api-socket": {
      type: "string",
      valueHint: "PATH",
      description: "Serve the REST API on this Unix socket (overrides [api] socket)",
    },
    ...sharedArgs,
  },
  async run({ args }) {
    const log = createLogger(args["log-level"] as LogLevelName);
    const vm = await Vm.create(args.config, { logger: log, stdin: process.stdin.isTTY === true });
    const socket = args["api-socket"] !== undefined ? resolve(args["api-socket"]) : vm.config.api.socket;
    if (socket !== undefined) vm.config.api.socket = socket; // vm.info reports the socket in use
    const api =
      socket === undefined
        ? undefined
        : await startApiServer(vm, { socket, logger: log }).catch(async (e: unknown) => {
            await vm.shutdown();
            throw e;
          });
    const onSignal = (signal: string) => {
      log.info(`${signal}: shutting the VM down`);
      void vm.shutdown();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    const exit = await vm
      .boot()
      .then(() => vm.exited)
      .finally(() => api?.close()); // the socket goes whichever way the VM ends (signals included)
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (exit.reason === "crash") {
      log.error(exit.detail);
      for (const line of exit.crash?.registers ?? []) log.info(`  ${line}`);
      process.exitCode = EXIT_GUEST_CRASH;
      return;
    }
    log.info(`the VM stopped: ${exit.reason} (${exit.detail})`);
    process.exitCode = EXIT_OK;
  },
});
