/**
 * Makes a config's file paths absolute and checks them now, so a typo in a path fails at load time with the
 * key that holds it, not later as a bare ENOENT from deep inside the VMM.
 * @module
 */
import { accessSync, constants, type Stats, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ConfigError, type ConfigIssue, issueAt } from "./config-error.ts";
import { SOCKET_PATH_MAX } from "./limits.ts";
import type { VmConfig } from "./schema.ts";

const READABLE_FILE = "a readable regular file";
const CREATABLE_PATH = "a writable path in an existing directory";

/** The errno codes a user can act on, in words; anything else keeps node's own message. */
function describeFsError(error: unknown, what: "file" | "directory"): string {
  const code = error instanceof Error && "code" in error ? error.code : undefined;
  if (code === "ENOENT" || code === "ENOTDIR") return `${what} not found`;
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  return error instanceof Error ? error.message : String(error);
}

/** Stats, or the words for why there are none. */
function stat(path: string, what: "file" | "directory"): Stats | { problem: string } {
  try {
    return statSync(path);
  } catch (error) {
    return { problem: describeFsError(error, what) };
  }
}

/** A payload file (kernel, initramfs) must exist, be a regular file and be readable by us. */
function checkReadableFile(key: string, given: string, abs: string): ConfigIssue | undefined {
  const stats = stat(abs, "file");
  if ("problem" in stats) return issueAt(key, given, READABLE_FILE, `${stats.problem}: ${abs}`);
  if (!stats.isFile()) return issueAt(key, given, READABLE_FILE, `not a regular file: ${abs}`);
  try {
    accessSync(abs, constants.R_OK);
  } catch (error) {
    return issueAt(key, given, READABLE_FILE, `${describeFsError(error, "file")}: ${abs}`);
  }
  return undefined;
}

/**
 * A disk image must exist, be a regular file or a block device, and be readable (and writable unless
 * `readonly`). Its size and lock are checked when it is opened, as the machine is built.
 */
function diskImageChecker(readonly: boolean) {
  return (key: string, given: string, abs: string): ConfigIssue | undefined => {
    const expected = `an existing disk image (a regular file or a block device) we can read${readonly ? "" : " and write"}`;
    const stats = stat(abs, "file");
    if ("problem" in stats) return issueAt(key, given, expected, `${stats.problem}: ${abs}`);
    if (!stats.isFile() && !stats.isBlockDevice())
      return issueAt(key, given, expected, `not a regular file or block device: ${abs}`);
    try {
      accessSync(abs, readonly ? constants.R_OK : constants.R_OK | constants.W_OK);
    } catch (error) {
      return issueAt(key, given, expected, `${describeFsError(error, "file")}: ${abs}`);
    }
    return undefined;
  };
}

/** An entropy source: a readable character device (/dev/urandom), FIFO or regular file. */
function checkEntropySource(key: string, given: string, abs: string): ConfigIssue | undefined {
  const expected = "a readable character device, FIFO or file";
  const stats = stat(abs, "file");
  if ("problem" in stats) return issueAt(key, given, expected, `${stats.problem}: ${abs}`);
  if (!stats.isCharacterDevice() && !stats.isFIFO() && !stats.isFile())
    return issueAt(key, given, expected, `not a character device, FIFO or file: ${abs}`);
  try {
    accessSync(abs, constants.R_OK);
  } catch (error) {
    return issueAt(key, given, expected, `${describeFsError(error, "file")}: ${abs}`);
  }
  return undefined;
}

/** A file the VMM creates (serial log, API socket) need not exist, but its directory must, and be writable. */
function checkCreatablePath(key: string, given: string, abs: string): ConfigIssue | undefined {
  const dir = dirname(abs);
  const dirStats = stat(dir, "directory");
  if ("problem" in dirStats) return issueAt(key, given, CREATABLE_PATH, `${dirStats.problem}: ${dir}`);
  if (!dirStats.isDirectory()) return issueAt(key, given, CREATABLE_PATH, `not a directory: ${dir}`);
  const target = stat(abs, "file");
  if (!("problem" in target) && target.isDirectory()) {
    return issueAt(key, given, CREATABLE_PATH, `is a directory: ${abs}`);
  }
  try {
    if ("problem" in target) accessSync(dir, constants.W_OK | constants.X_OK);
    else accessSync(abs, constants.W_OK);
  } catch (error) {
    return issueAt(
      key,
      given,
      CREATABLE_PATH,
      `${describeFsError(error, "file")}: ${"problem" in target ? dir : abs}`,
    );
  }
  return undefined;
}

/** The API socket is also bound by `sun_path`, which counts the absolute path's bytes. */
function checkSocketPath(key: string, given: string, abs: string): ConfigIssue | undefined {
  const length = Buffer.byteLength(abs);
  if (length > SOCKET_PATH_MAX) {
    const expected = `a path of at most ${SOCKET_PATH_MAX} bytes (the Unix socket limit)`;
    const problem = `too long for a Unix socket (${length} bytes, at most ${SOCKET_PATH_MAX}): ${abs}`;
    return issueAt(key, given, expected, problem);
  }
  return checkCreatablePath(key, given, abs);
}

/**
 * The config with every path absolute (relative ones are taken from `baseDir`, the config file's directory),
 * after checking each path can be used.
 * @throws {ConfigError} listing every unusable path, the first in the message.
 */
export function resolveFiles(config: VmConfig, baseDir: string, source?: string): VmConfig {
  const issues: ConfigIssue[] = [];
  const check = (
    key: string,
    given: string | undefined,
    checker: typeof checkReadableFile,
  ): string | undefined => {
    if (given === undefined) return undefined;
    const abs = resolve(baseDir, given);
    const issue = checker(key, given, abs);
    if (issue) issues.push(issue);
    return abs;
  };
  const kernel = check("payload.kernel", config.payload.kernel, checkReadableFile);
  const initramfs = check("payload.initramfs", config.payload.initramfs, checkReadableFile);
  const serialFile = check("serial.file", config.serial.file, checkCreatablePath);
  const socket = check("api.socket", config.api.socket, checkSocketPath);
  const disks = config.disks.map((d, i) => ({
    ...d,
    path: check(`disks.${i}.path`, d.path, diskImageChecker(d.readonly)) ?? d.path,
  }));
  const rngSource = check("rng.src", config.rng?.src, checkEntropySource);
  const consoleFile = check("console.file", config.console.file, checkCreatablePath);
  const vsockSocket = check("vsock.socket", config.vsock?.socket, checkSocketPath);
  const [first, ...rest] = issues;
  if (first) throw new ConfigError([first, ...rest], source);
  return {
    cpus: { ...config.cpus },
    memory: { ...config.memory },
    payload: {
      ...config.payload,
      ...(kernel === undefined ? {} : { kernel }),
      ...(initramfs === undefined ? {} : { initramfs }),
    },
    serial: { ...config.serial, ...(serialFile === undefined ? {} : { file: serialFile }) },
    api: socket === undefined ? {} : { socket },
    disks,
    ...(config.rng === undefined ? {} : { rng: { src: rngSource! } }),
    console: { ...config.console, ...(consoleFile === undefined ? {} : { file: consoleFile }) },
    net: config.net.map((n) => ({ ...n })),
    ...(config.vsock === undefined ? {} : { vsock: { ...config.vsock, socket: vsockSocket! } }),
    vmm: { ...config.vmm },
  };
}
