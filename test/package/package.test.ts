/**
 * bunvmm as a dependency: `npm pack` this checkout, install the tarball into a fresh project (npm, the
 * registry for bunvmm's own dependencies, bun among them), then, in that project, run `npx bunvmm run`
 * (the built-in demo) and a `bun test` file that boots the demo through the library. Nothing of this
 * checkout is visible to the consuming project except the tarball.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

const REPO = join(import.meta.dir, "..", "..");
/** npm pack and npm install (which may fetch bun itself, ~100 MB) each get this long. */
const NPM_DEADLINE_MS = 300_000;
/** A demo boot in the consuming project (four vCPUs greet, the guest powers off). */
const RUN_DEADLINE_MS = 120_000;

interface Ran {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cmd` in `cwd` with a deadline (killed when it passes). */
async function run(cmd: string[], cwd: string, timeout: number): Promise<Ran> {
  // As in the shell of a user who has node and npm but no bun: bun test's own variables are dropped,
  // and so is every PATH entry holding a bun (this checkout's node_modules/.bin among them).
  const env = { ...process.env };
  delete env.NODE_ENV;
  delete env.BUN_ENV;
  env.PATH = (env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => dir !== "" && !existsSync(join(dir, "bun")))
    .join(delimiter);
  const p = Bun.spawn(cmd, { cwd, env, stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { exitCode, stdout, stderr };
}

function expectSuccess(what: string, r: Ran): void {
  if (r.exitCode !== 0) throw new Error(`${what} exited ${r.exitCode}:\n${r.stdout}\n${r.stderr}`);
}

/** The test file a consuming project writes: the library by its package name, no consola import. */
const CONSUMER_TEST = `import { expect, test } from "bun:test";
import { Vm } from "bunvmm";

test("the built-in demo boots from the installed package", async () => {
  await using vm = await Vm.create(undefined, { serial: { mode: "off" }, logLevel: "warn" });
  await vm.boot();
  const exit = await vm.exited;
  expect(exit.reason).toBe("poweroff");
  expect(vm.serial.text).toContain("all 4 vCPUs said hello");
}, 60_000);
`;

let work = "";
let app = "";

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "bunvmm-package-"));
  expectSuccess("npm pack", await run(["npm", "pack", "--pack-destination", work], REPO, NPM_DEADLINE_MS));
  const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
  if (!tarball) throw new Error(`npm pack left no .tgz in ${work}`);
  app = join(work, "app");
  await Bun.write(
    join(app, "package.json"),
    JSON.stringify({ name: "bunvmm-consumer", private: true, type: "module" }),
  );
  expectSuccess(
    "npm install of the tarball",
    await run(["npm", "install", "--no-audit", "--no-fund", join(work, tarball)], app, NPM_DEADLINE_MS),
  );
}, 2 * NPM_DEADLINE_MS);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("bunvmm installed as a package", () => {
  test("the tarball ships the library and the command, not the tests", async () => {
    const listing = await run(["npm", "pack", "--dry-run", "--json"], REPO, NPM_DEADLINE_MS);
    expectSuccess("npm pack --dry-run", listing);
    const files = (JSON.parse(listing.stdout) as { files: { path: string }[] }[])[0]!.files.map(
      (f) => f.path,
    );
    expect(files).toContain("src/index.ts");
    expect(files).toContain("src/cli/main.ts");
    expect(files).toContain("src/vcpu/worker.ts");
    expect(files).toContain("ffi/libc.ts");
    expect(files.some((f) => f.startsWith("test/"))).toBe(false);
  });

  test("npx bunvmm run boots the built-in demo", async () => {
    const r = await run(["npx", "--no-install", "bunvmm", "run"], app, RUN_DEADLINE_MS);
    expectSuccess("npx bunvmm run", r);
    expect(r.stdout).toContain("all 4 vCPUs said hello; powering off");
    expect(r.stderr).toContain("the VM stopped: poweroff");
  });

  test("a bun test file in the consuming project boots a VM through the library", async () => {
    writeFileSync(join(app, "demo.test.ts"), CONSUMER_TEST);
    const r = await run(["npx", "--no-install", "bun", "test", "demo.test.ts"], app, RUN_DEADLINE_MS);
    expectSuccess("bun test in the consuming project", r);
    expect(r.stderr).toMatch(/\b1 pass\b/);
    expect(r.stderr).toMatch(/\b0 fail\b/);
    // logLevel "warn": the library's info lines ("booting ...") stay quiet.
    expect(r.stderr).not.toContain("[info] [bunvmm]");
  });
});
