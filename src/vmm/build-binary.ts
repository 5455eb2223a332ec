/**
 * `bun run build`: compiles the CLI and every worker entry point (src/vmm/worker-entries.ts) into one
 * executable, dist/bunvmm unless `--outfile PATH` says otherwise.
 *
 * With bytecode: the binary carries JavaScriptCore bytecode next to the sources, so neither the VMM
 * thread nor a vCPU worker parses its modules at start-up (spawn to the guest's first port write went
 * from ~69 to ~41 ms at best on the build machine, docs/performance.md). ESM, because the CLI's entry
 * uses top-level await.
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
  [
    process.execPath,
    "build",
    "--compile",
    "--bytecode",
    "--format=esm",
    ...compiledEntryPoints(),
    "--outfile",
    outfile,
  ],
  {
    cwd: REPO,
    stdout: "inherit",
    stderr: "inherit",
  },
);
process.exit(build.exitCode ?? 1);
