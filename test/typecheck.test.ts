/** The whole tree type-checks under the strict tsconfig (tsc from the devDependencies). */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { REPO } from "./helpers/cli.ts";

test("tsc --noEmit reports no errors", () => {
  const tsc = Bun.spawnSync([join(REPO, "node_modules", ".bin", "tsc"), "--noEmit", "-p", REPO], {
    cwd: REPO,
  });
  expect(tsc.stdout.toString()).toBe("");
  expect(tsc.exitCode).toBe(0);
});
