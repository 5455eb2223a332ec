/**
 * `bun run build`: compiles the CLI and every worker entry point (src/vmm/worker-entries.ts) into one
 * executable, dist/bunvmm unless `--outfile PATH` says otherwise.
 *
 * Threads: a plain script, run by Bun's main thread.
 */
import { join } from "node:path";
import { compiledEntryPoints } from "./worker-entries.ts";

const REPO = join(import.meta.dir, "..", "..");
const DEFAULT_OUTFILE = "dist/bunvmm";

const at = process.argv.indexOf("--outfile");
const outfile = at >= 0 ? process.argv[at + 1] : DEFAULT_OUTFILE;
if (!outfile) throw new Error("--outfile needs a path");

const build = Bun.spawnSync(
  [process.execPath, "build", "--compile", ...compiledEntryPoints(), "--outfile", outfile],
  {
    cwd: REPO,
    stdout: "inherit",
    stderr: "inherit",
  },
);
process.exit(build.exitCode ?? 1);
