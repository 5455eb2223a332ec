/**
 * `bunvmm restore SOURCE [--api-socket PATH] [--resume]`: starts a VMM with the VM a snapshot holds
 * (SOURCE: a directory or a file:// URL) and serves it like `bunvmm run` until it stops. The VM starts
 * Paused, as in cloud-hypervisor, unless `--resume`; resume it later through the API (`bunvmm remote
 * --api-socket PATH resume`). A bad snapshot is one line and exit 1, and nothing is changed.
 *
 * Threads: Bun's main thread.
 */
import { defineCommand } from "citty";
import { createLogger, type LogLevelName } from "../../vmm/logger.ts";
import { Vm } from "../../vmm/vm.ts";
import { superviseVm } from "./run.ts";
import { sharedArgs } from "./shared-args.ts";

export const restoreCommand = defineCommand({
  meta: { name: "restore", description: "Restore a VM from a snapshot (paused unless --resume)" },
  args: {
    source: {
      type: "positional",
      required: true,
      description: "The snapshot: a directory or a file:// URL",
    },
    "api-socket": {
      type: "string",
      valueHint: "PATH",
      description: "Serve the REST API on this Unix socket",
    },
    resume: {
      type: "boolean",
      default: false,
      description: "Run the guest at once instead of starting Paused",
    },
    ...sharedArgs,
  },
  async run({ args }) {
    const log = createLogger(args["log-level"] as LogLevelName);
    const vm = await Vm.restore(args.source, { logger: log, resume: args.resume });
    // The API socket belongs to the VMM process, not to the VM: the one the snapshotted VMM served on
    // may still be in use. Only --api-socket serves the API here.
    vm.config.api.socket = undefined;
    await superviseVm(vm, {
      log,
      socket: args["api-socket"],
      start: () => Promise.resolve(), // Vm.restore has started it: Paused, or Running with --resume
    });
  },
});
