/**
 * The process's logger: consola's core with a one-line reporter on stderr, so stdout carries nothing
 * but the guest's serial output. consola's default entry (fancy and basic reporters) costs ~9 MiB of
 * RSS at import; the core costs ~2 (measured with `bun -e`, see docs/performance.md).
 */
import {
  type ConsolaInstance,
  type ConsolaReporter,
  createConsola,
  LogLevels,
  type LogType,
} from "consola/core";

export const LOG_LEVEL_NAMES = ["silent", "fatal", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevelName = (typeof LOG_LEVEL_NAMES)[number];

/** "[info] [bunvmm] message": one line per record; an Error that is not a user error keeps its stack. */
const lineReporter: ConsolaReporter = {
  log(record) {
    const text = record.args
      .map((a) => (a instanceof Error ? (a.stack ?? a.message) : typeof a === "string" ? a : Bun.inspect(a)))
      .join(" ");
    const tag = record.tag ? ` [${record.tag}]` : "";
    process.stderr.write(`[${record.type}]${tag} ${text}\n`);
  },
};

/** A consola instance at `level`, tagged "bunvmm", writing only to stderr. */
export function createLogger(level: LogLevelName = "info"): ConsolaInstance {
  return createConsola({ level: LogLevels[level as LogType], reporters: [lineReporter] }).withTag("bunvmm");
}
