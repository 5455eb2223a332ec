/** `bunvmm validate CONFIG`: checks a config and prints it resolved (defaults, absolute paths) as JSON. */
import { defineCommand } from "citty";
import { loadConfigFile } from "../../config/index.ts";
import { sharedArgs } from "./shared-args.ts";

export const validateCommand = defineCommand({
  meta: { name: "validate", description: "Check a VM's TOML config and print it resolved, as JSON" },
  args: {
    config: { type: "positional", required: true, description: "Path to the VM's TOML file" },
    ...sharedArgs,
  },
  async run({ args }) {
    const config = await loadConfigFile(args.config);
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
  },
});
