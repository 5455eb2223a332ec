/** Biome (formatter and linter, biome.json) reports nothing on the tree: a lint error fails `npm test`. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { REPO } from "./helpers/cli.ts";

test("biome ci reports no formatting or lint errors", () => {
  const biome = Bun.spawnSync(
    [join(REPO, "node_modules", ".bin", "biome"), "ci", "--colors=off", "--error-on-warnings", REPO],
    {
      cwd: REPO,
    },
  );
  const report = `${biome.stdout.toString()}${biome.stderr.toString()}`;
  expect(biome.exitCode, report).toBe(0);
});
