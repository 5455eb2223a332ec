/**
 * Runs a script as the unprivileged user "nobody" (setpriv from util-linux), for the checks that root
 * would pass (unreadable files, /dev/kvm). The checkout may sit under a directory nobody cannot enter
 * (CI's clone folder, `mktemp -d`), so the script is bundled and run with a copy of the bun
 * executable, both in a world-readable temporary directory.
 */
import { chmodSync, copyFileSync, mkdtempSync, realpathSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { BUN } from "./cli.ts";

const NOBODY = 65534;
let stage: { dir: string; bun: string } | undefined;

function staging(): { dir: string; bun: string } {
  if (stage) return stage;
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-nobody-"));
  chmodSync(dir, 0o755);
  const bun = join(dir, "bun");
  copyFileSync(realpathSync(BUN), bun);
  chmodSync(bun, 0o755);
  stage = { dir, bun };
  return stage;
}

export interface NobodyResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Bundles `entry` (a .ts file; its imports are followed) and runs it with `args` as nobody. */
export function runAsNobody(entry: string, args: string[] = []): NobodyResult {
  const { dir, bun } = staging();
  const out = join(dir, `${basename(entry, ".ts")}-${Math.random().toString(36).slice(2)}.js`);
  const build = Bun.spawnSync([BUN, "build", "--target=bun", "--outfile", out, entry], {
    stderr: "pipe",
    stdout: "pipe",
  });
  if (build.exitCode !== 0) throw new Error(`bun build ${entry} failed: ${build.stderr.toString()}`);
  chmodSync(out, 0o644);
  const asUser =
    process.getuid?.() === 0 ? ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups"] : [];
  const p = Bun.spawnSync([...asUser, bun, out, ...args], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  return { exitCode: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** Writes `code` to a script in the staging directory (for runAsNobody), importing by absolute path. */
export function nobodyScript(name: string, code: string): string {
  const path = join(staging().dir, `${name}.ts`);
  writeFileSync(path, code);
  return path;
}
