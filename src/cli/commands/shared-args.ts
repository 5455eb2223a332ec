/** Arguments every bunvmm command takes. */
import type { ArgsDef } from "citty";
import { LOG_LEVEL_NAMES } from "../../vmm/logger.ts";

export const sharedArgs = {
  "log-level": {
    type: "enum",
    options: [...LOG_LEVEL_NAMES],
    default: "info",
    description: "How much bunvmm logs to stderr",
  },
} as const satisfies ArgsDef;
