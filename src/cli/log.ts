/**
 * The process's logger: consola, always on stderr, so stdout carries nothing but the guest's serial
 * output (a user can pipe it).
 */
import { type ConsolaInstance, LogLevels, type LogType, createConsola } from "consola";

export const LOG_LEVEL_NAMES = ["silent", "fatal", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevelName = (typeof LOG_LEVEL_NAMES)[number];

/** A consola instance at `level`, tagged "bunvmm", writing only to stderr. */
export function createLogger(level: LogLevelName = "info"): ConsolaInstance {
  return createConsola({
    level: LogLevels[level as LogType],
    stdout: process.stderr,
    stderr: process.stderr,
    // Plain one-line records unless a person is watching a terminal.
    fancy: process.stderr.isTTY === true,
  }).withTag("bunvmm");
}
