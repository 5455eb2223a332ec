/**
 * The `bunvmm` command line (issue 9 item 5): unknown flags, bad values and extra arguments are one-line
 * errors with a did-you-mean; `help` and `version` are commands; colour only on a terminal without
 * NO_COLOR.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import packageJson from "../../package.json" with { type: "json" };
import { expectOneLineError, runCli, SOURCE_CLI } from "../helpers/cli.ts";
import { inTerminal } from "./_pty.ts";

setDefaultTimeout(60_000);

const ESC = "\u001b";
/** The environment without what makes citty drop colour by itself, so only our rule decides. */
const { CI: _ci, TEST: _test, NO_COLOR: _noColor, ...plainEnv } = process.env;

describe("bad command lines are one-line errors", () => {
  test.each([
    [
      ["run", "--api-sock", "/tmp/x.sock"],
      "bunvmm run: unknown option --api-sock (did you mean --api-socket?)",
    ],
    [["run", "--api-sock=/tmp/x.sock"], "bunvmm run: unknown option --api-sock (did you mean --api-socket?)"],
    [
      ["run", "--frobnicate"],
      "bunvmm run: unknown option --frobnicate; it takes --api-socket, --lifecycle-timeout-ms, --log-level, --help",
    ],
    [
      ["run", "a.toml", "b.toml"],
      'bunvmm run: unexpected argument "b.toml"; bunvmm run takes at most 1 argument (CONFIG)',
    ],
    [
      ["validate", "a.toml", "--log-level", "wran"],
      'bunvmm validate: --log-level "wran": expected one of silent, fatal, error, warn, info, debug, trace (did you mean "warn"?)',
    ],
    [["validate", "a.toml", "--log-level"], "bunvmm validate: --log-level needs a value"],
    [["validate"], "bunvmm validate: missing CONFIG"],
    [["acpi-tables", "a.toml"], "bunvmm acpi-tables: missing --out DIR"],
    [["version", "extra"], 'bunvmm version: unexpected argument "extra"; bunvmm version takes no arguments'],
    [
      ["rnu"],
      'unknown command "rnu"; expected one of: run, validate, remote, acpi-tables, snapshot, restore, help, version (did you mean "run"?)',
    ],
    [["--frobnicate"], "unknown option --frobnicate"],
  ])("bunvmm %j", async (argv, message) => {
    const r = await runCli([...SOURCE_CLI, ...argv]);
    expectOneLineError(r, message);
    expect(r.stderr).not.toContain(ESC);
  });
});

describe("help and version", () => {
  test.each([["--version"], ["version"]])("bunvmm %s names the program", async (flag) => {
    const r = await runCli([...SOURCE_CLI, flag]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`bunvmm ${packageJson.version}\n`);
  });

  test("bunvmm help lists the commands, bunvmm help run the flags; no colour into a pipe", async () => {
    const all = await runCli([...SOURCE_CLI, "help"], { env: plainEnv as Record<string, string> });
    expect(all.exitCode).toBe(0);
    expect(all.stdout).toContain(
      "USAGE bunvmm run|validate|remote|acpi-tables|snapshot|restore|help|version",
    );
    expect(all.stdout).not.toContain(ESC);
    for (const argv of [
      ["help", "run"],
      ["--help", "run"],
      ["run", "--help"],
    ]) {
      const run = await runCli([...SOURCE_CLI, ...argv], { env: plainEnv as Record<string, string> });
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toContain("USAGE bunvmm run [OPTIONS] [CONFIG]");
      expect(run.stdout).toContain("--api-socket");
      expect(run.stdout).not.toContain(ESC);
    }
  });

  test("on a terminal: colour, unless NO_COLOR is set", async () => {
    const coloured = await inTerminal([...SOURCE_CLI, "help"], [["exit"]], plainEnv);
    expect(coloured.exit).toBe(0);
    expect(coloured.rest).toContain("USAGE");
    expect(coloured.rest).toContain(ESC);
    const plain = await inTerminal([...SOURCE_CLI, "help"], [["exit"]], { ...plainEnv, NO_COLOR: "1" });
    expect(plain.exit).toBe(0);
    expect(plain.rest).toContain("USAGE bunvmm");
    expect(plain.rest).not.toContain(ESC);
  });
});
