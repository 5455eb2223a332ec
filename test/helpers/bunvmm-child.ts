/**
 * `bunvmm run --api-socket` as a child process, as a user runs it, with a deadline on its whole life,
 * plus the TOML of the test guests it boots.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitForApi } from "./api-client.ts";
import { type CliResult, runCli, SOURCE_CLI } from "./cli.ts";
import { guestImage } from "./guests.ts";

/** A fresh directory for sockets and configs (short, so socket paths stay under 107 bytes). */
export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "bunvmm-api-"));
}

/** A TOML config for the counter guest with `boot` of `max` vCPUs, serial off, plus `extra` lines. */
export function counterToml(dir: string, opts: { boot?: number; max?: number; extra?: string } = {}): string {
  const path = join(
    dir,
    `counter-${opts.boot ?? 2}-${opts.max ?? 4}-${Math.random().toString(36).slice(2)}.toml`,
  );
  writeFileSync(
    path,
    `[payload]\nkernel = "${guestImage("counter")}"\nformat = "raw"\n[memory]\nsize = "16M"\n` +
      `[cpus]\nboot_vcpus = ${opts.boot ?? 2}\nmax_vcpus = ${opts.max ?? 4}\n[serial]\nmode = "off"\n${opts.extra ?? ""}`,
  );
  return path;
}

export interface BunvmmChild {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  /** stderr so far (bunvmm's log lines). */
  stderr(): string;
  /** Resolves with the exit code and everything printed, when the process ends (or is killed at the deadline). */
  readonly result: Promise<CliResult>;
}

/** Spawns `bunvmm ...args` and collects its output; killed with SIGKILL after `lifeMs`. */
export function spawnBunvmm(args: string[], lifeMs = 60_000): BunvmmChild {
  const proc = Bun.spawn([...SOURCE_CLI, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), lifeMs); // deadline on the whole run
  let stderr = "";
  const decoder = new TextDecoder();
  const stderrDone = (async () => {
    for await (const chunk of proc.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  const result = (async () => {
    const [stdout] = await Promise.all([new Response(proc.stdout).text(), stderrDone]);
    await proc.exited;
    clearTimeout(timer);
    return { exitCode: proc.exitCode, signal: proc.signalCode, stdout, stderr };
  })();
  return { proc, stderr: () => stderr, result };
}

/** `bunvmm run CONFIG --api-socket SOCKET`, resolved once the API answers vmm.ping. */
export async function runWithApi(config: string, socket: string, extra: string[] = []): Promise<BunvmmChild> {
  const child = spawnBunvmm(["run", config, "--api-socket", socket, ...extra]);
  const exitedEarly = child.result.then((r) => {
    throw new Error(`bunvmm run exited (${r.exitCode}) before its API answered: ${r.stderr}`);
  });
  exitedEarly.catch(() => undefined); // it ends later in every test; only the race below reads it
  await Promise.race([waitForApi(socket), exitedEarly]);
  return child;
}

/** `bunvmm remote --api-socket SOCKET ...args` to completion. */
export function remote(socket: string, ...args: string[]): Promise<CliResult> {
  return runCli([...SOURCE_CLI, "remote", "--api-socket", socket, ...args], { timeoutMs: 30_000 });
}
