/**
 * The guest's console on `bunvmm run`'s stdin (issue 9 item 4): in a real pseudo-terminal (driven by
 * _pty.py) raw mode while the VM runs, Ctrl-C to the guest, the Ctrl-A escape, and the terminal given
 * back on every way out; from a pipe, bytes reach the guest unchanged and none are lost.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ESCAPE_BYTE, ESCAPE_HELP, EscapeFilter } from "../../src/cli/console.ts";
import { SOURCE_CLI } from "../helpers/cli.ts";
import { guestImage } from "../helpers/guests.ts";
import { COOKED, inTerminal, RAW, type Step } from "./_pty.ts";

setDefaultTimeout(90_000);

const dir = mkdtempSync(join(tmpdir(), "bunvmm-console-"));
const CTRL_A = String.fromCharCode(ESCAPE_BYTE);
const CTRL_C = "\x03";

/** `bunvmm run` of test/guests/GUEST.S. */
const run = (guest: string) => [...SOURCE_CLI, "run", guestToml(guest)];

function guestToml(guest: string): string {
  const path = join(dir, `${guest}.toml`);
  writeFileSync(path, `[payload]\nkernel = "${guestImage(guest)}"\nformat = "raw"\n[memory]\nsize = "16M"\n`);
  return path;
}

describe("bunvmm run on a terminal", () => {
  test("raw mode: keys reach the guest as typed, unechoed; Ctrl-C goes to the guest; Ctrl-A Ctrl-A sends Ctrl-A; Ctrl-A x stops; the terminal is restored", async () => {
    const r = await inTerminal(run("echo"), [
      ["expect", "ready\r\n"],
      ["snapshot"],
      ["send", "a"],
      ["expect", "A"],
      ["send", CTRL_C],
      ["expect", CTRL_C],
      ["send", `${CTRL_A}${CTRL_A}`],
      ["expect", CTRL_A],
      ["send", `${CTRL_A}h`],
      ["send", `${CTRL_A}x`],
      ["exit"],
    ]);
    expect(r.error).toBeUndefined();
    expect(r.snapshots).toEqual([RAW]);
    // Each segment is exactly the guest's echo: no local echo of "a", no "^C" from the line discipline.
    expect(r.segments.slice(1)).toEqual(["A", CTRL_C, CTRL_A]);
    expect(r.exit).toBe(0);
    expect(r.restored).toBe(true);
    expect(r.after).toEqual(COOKED);
    expect(r.stderr).toContain(ESCAPE_HELP);
    expect(r.stderr).toContain("Ctrl-A x: shutting the VM down");
    expect(r.stderr).toContain("the VM stopped: shutdown");
    expect(r.stderr).not.toContain("SIGINT");
  });

  test.each([
    ["the guest powers off", [["send", "q"]] as Step[], 0],
    ["SIGTERM", [["signal", "SIGTERM"]] as Step[], 0],
    ["SIGHUP", [["signal", "SIGHUP"]] as Step[], 0],
  ])("the terminal is restored when %s", async (_how, stop, exitCode) => {
    const r = await inTerminal(run("echo"), [["expect", "ready\r\n"], ["snapshot"], ...stop, ["exit"]]);
    expect(r.error).toBeUndefined();
    expect(r.snapshots).toEqual([RAW]);
    expect(r.exit).toBe(exitCode);
    expect(r.restored).toBe(true);
  });

  test("closing the terminal (a hang-up) shuts the VM down quietly, exit 0", async () => {
    const r = await inTerminal(run("echo"), [["expect", "ready\r\n"], ["hangup"], ["exit"]]);
    expect(r.error).toBeUndefined();
    expect(r.signal).toBeNull();
    expect(r.exit).toBe(0);
    expect(r.stderr).toContain("SIGHUP: shutting the VM down");
    expect(r.stderr).toContain("the VM stopped: shutdown");
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr).not.toContain("[error]");
  });

  test("the terminal is restored when the guest crashes", async () => {
    const r = await inTerminal(run("triple-fault"), [["expect", "T"], ["exit"]]);
    expect(r.error).toBeUndefined();
    expect(r.exit).toBe(2);
    expect(r.restored).toBe(true);
  });
});

describe("bunvmm run with piped stdin", () => {
  test("bytes reach the guest unchanged (no escape) and come back on stdout, none lost past the receive queue", async () => {
    // 10,000 keys are more than the guest's 4 KiB receive queue holds: the console must hold them back.
    const keys = "a".repeat(10_000);
    const proc = Bun.spawn([...SOURCE_CLI, "run", guestToml("echo")], {
      stdin: new TextEncoder().encode(`${keys}${CTRL_A}x${CTRL_A}${CTRL_A}q`),
      stdout: "pipe",
      stderr: "pipe",
    });
    const killer = setTimeout(() => proc.kill("SIGKILL"), 60_000); // deadline on the whole run
    const [stdout, stderr] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    await proc.exited;
    clearTimeout(killer);
    expect(proc.exitCode).toBe(0);
    // Ctrl-A x is not an escape from a pipe: Ctrl-A, "X", Ctrl-A, Ctrl-A reach the guest, then "q" powers it off.
    expect(stdout).toBe(`ready\n${"A".repeat(keys.length)}${CTRL_A}X${CTRL_A}${CTRL_A}`);
    expect(stderr).toContain("the VM stopped: poweroff");
  });
});

describe("EscapeFilter", () => {
  const run = (chunks: string[]) => {
    const actions: string[] = [];
    const filter = new EscapeFilter({ quit: () => actions.push("quit"), help: () => actions.push("help") });
    const out = chunks.map((c) => new TextDecoder().decode(filter.filter(new TextEncoder().encode(c))));
    return { out: out.join(""), actions };
  };

  test.each([
    [["abc"], "abc", []],
    [[`${CTRL_A}${CTRL_A}`], CTRL_A, []],
    [[CTRL_A, CTRL_A], CTRL_A, []], // split across reads
    [[`a${CTRL_A}`, "xb"], "a", ["quit"]], // nothing after the quit
    [[`${CTRL_A}X`], "", ["quit"]],
    [[`${CTRL_A}h${CTRL_A}?`], "", ["help", "help"]],
    [[`${CTRL_A}b`], `${CTRL_A}b`, []], // any other key: both bytes go
  ])("%j -> %j with %j", (chunks, out, actions) => {
    expect(run(chunks)).toEqual({ out, actions });
  });
});
