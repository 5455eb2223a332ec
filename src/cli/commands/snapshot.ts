/**
 * `bunvmm snapshot --api-socket PATH DIR`: snapshots a running bunvmm's paused VM into DIR through its
 * REST API (PUT vm.snapshot with `destination_url` file://DIR), in `bunvmm remote`'s style: one line on
 * success, one line on stderr and exit 1 on any failure, with the server's own message.
 *
 * Threads: Bun's main thread.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { defineCommand } from "citty";
import { createLogger, type LogLevelName } from "../../vmm/logger.ts";
import { EXIT_ERROR } from "../errors.ts";
import { RemoteError, request } from "./remote.ts";
import { sharedArgs } from "./shared-args.ts";

export const snapshotCommand = defineCommand({
  meta: { name: "snapshot", description: "Snapshot a running bunvmm's paused VM into a directory" },
  args: {
    dir: { type: "positional", required: true, description: "A new or empty directory for the snapshot" },
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
    const dir = resolve(args.dir);
    try {
      await request(
        args["api-socket"],
        { method: "PUT", endpoint: "vm.snapshot" },
        JSON.stringify({ destination_url: pathToFileURL(dir).href }),
      );
      process.stdout.write(`snapshot written to ${dir}\n`);
    } catch (e) {
      if (!(e instanceof RemoteError)) throw e;
      log.error(e.message);
      process.exitCode = EXIT_ERROR;
    }
  },
});
