/**
 * docs/library.md can be followed literally: its guest.S, its build commands and its complete test file
 * are taken out of the page, built and run with `bun test` in a fresh directory where bunvmm sits in
 * node_modules (a link to this checkout, as `npm install` would place it). The same for its fixture
 * example (boot once, snapshot, restore a fresh VM per test).
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { codeBlock } from "./_markdown.ts";

const REPO = join(import.meta.dir, "..", "..");
/** The build commands and the doc's two tests (each bounded by its own 60 s timeout). */
const BUILD_DEADLINE_MS = 30_000;
const RUN_DEADLINE_MS = 150_000;

const project = mkdtempSync(join(tmpdir(), "bunvmm-library-doc-"));
afterAll(() => rmSync(project, { recursive: true, force: true }));

async function run(cmd: string[], timeout: number): Promise<{ code: number | null; out: string }> {
  const p = Bun.spawn(cmd, { cwd: project, stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout });
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out: `${stdout}${stderr}` };
}

test(
  "docs/library.md: guest.S builds with the documented commands and guest.test.ts passes",
  async () => {
    const guest = codeBlock("library.md", 'an asm block starting "# guest.S"', (b) =>
      b.text.startsWith("# guest.S"),
    );
    const build = codeBlock(
      "library.md",
      'a sh block with "as --32"',
      (b) => b.lang === "sh" && b.text.includes("as --32"),
    );
    const testFile = codeBlock("library.md", 'a ts block starting "// guest.test.ts"', (b) =>
      b.text.startsWith("// guest.test.ts"),
    );

    mkdirSync(join(project, "node_modules"));
    symlinkSync(REPO, join(project, "node_modules", "bunvmm"), "dir");
    writeFileSync(join(project, "guest.S"), guest);
    writeFileSync(join(project, "guest.test.ts"), testFile);

    const built = await run(["sh", "-e", "-c", build], BUILD_DEADLINE_MS);
    if (built.code !== 0) throw new Error(`the documented build failed (${built.code}):\n${built.out}`);

    const ran = await run([process.execPath, "test", "guest.test.ts"], RUN_DEADLINE_MS);
    if (ran.code !== 0) throw new Error(`bun test guest.test.ts failed (${ran.code}):\n${ran.out}`);
    expect(ran.out).toMatch(/\b2 pass\b/);
    expect(ran.out).toMatch(/\b0 fail\b/);
  },
  BUILD_DEADLINE_MS + RUN_DEADLINE_MS,
);

test(
  "docs/library.md: fixture.test.ts (boot once, snapshot, restore per test) passes",
  async () => {
    const guest = codeBlock("library.md", 'an asm block starting "# guest.S"', (b) =>
      b.text.startsWith("# guest.S"),
    );
    const build = codeBlock(
      "library.md",
      'a sh block with "as --32"',
      (b) => b.lang === "sh" && b.text.includes("as --32"),
    );
    const fixture = codeBlock("library.md", 'a ts block starting "// fixture.test.ts"', (b) =>
      b.text.startsWith("// fixture.test.ts"),
    );
    mkdirSync(join(project, "node_modules"), { recursive: true });
    if (!existsSync(join(project, "node_modules", "bunvmm")))
      symlinkSync(REPO, join(project, "node_modules", "bunvmm"), "dir");
    writeFileSync(join(project, "guest.S"), guest);
    writeFileSync(join(project, "fixture.test.ts"), fixture);
    const built = await run(["sh", "-e", "-c", build], BUILD_DEADLINE_MS);
    if (built.code !== 0) throw new Error(`the documented build failed (${built.code}):\n${built.out}`);

    const ran = await run([process.execPath, "test", "fixture.test.ts"], RUN_DEADLINE_MS);
    if (ran.code !== 0) throw new Error(`bun test fixture.test.ts failed (${ran.code}):\n${ran.out}`);
    expect(ran.out).toMatch(/\b2 pass\b/);
    expect(ran.out).toMatch(/\b0 fail\b/);
  },
  BUILD_DEADLINE_MS + RUN_DEADLINE_MS,
);
