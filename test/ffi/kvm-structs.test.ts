/**
 * Our byte layouts, ioctl numbers and constants against the kernel's own headers: a C program generated
 * from ffi/ is compiled by gcc against <linux/kvm.h> and prints what the headers say.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ERRNO } from "../../ffi/errno-names.ts";
import { IOCTL_NUMBERS } from "../../ffi/ioctl-numbers.ts";
import { ALL_LAYOUTS, CHECKED_CONSTANTS } from "../../ffi/kvm-structs.ts";
import { SA_RESTART, SIG_BLOCK, SIG_UNBLOCK } from "../../ffi/libc.ts";
import { SIGACTION_LAYOUT } from "../../ffi/libc-structs.ts";

function generateC(): { source: string; expected: Map<string, number> } {
  const lines: string[] = [];
  const expected = new Map<string, number>();
  const print = (key: string, expr: string, value: number) => {
    lines.push(`  printf("%s %llu\\n", "${key}", (unsigned long long)(${expr}));`);
    expected.set(key, value);
  };
  for (const layout of [...ALL_LAYOUTS, SIGACTION_LAYOUT]) {
    const s = `struct ${layout.cName}`;
    print(`sizeof(${layout.cName})`, `sizeof(${s})`, layout.size);
    for (const [path, field] of Object.entries(layout.fields)) {
      print(`offsetof(${layout.cName}, ${path})`, `offsetof(${s}, ${path})`, field.offset);
      if (field.size > 0)
        print(`sizeof(${layout.cName}.${path})`, `sizeof(((${s} *)0)->${path})`, field.size);
    }
  }
  for (const [name, value] of Object.entries(IOCTL_NUMBERS)) print(name, name, value);
  for (const [name, value] of Object.entries(CHECKED_CONSTANTS)) print(name, name, value);
  for (const [name, [value]] of Object.entries(ERRNO)) print(name, name, value);
  for (const [name, value] of Object.entries({ SA_RESTART, SIG_BLOCK, SIG_UNBLOCK }))
    print(name, name, value);
  const source = [
    "#define _GNU_SOURCE",
    "#include <stdio.h>",
    "#include <signal.h>",
    "#include <stddef.h>",
    "#include <errno.h>",
    "#include <linux/kvm.h>",
    "int main(void) {",
    ...lines,
    "  return 0;",
    "}",
  ].join("\n");
  return { source, expected };
}

describe("ffi layouts", () => {
  test("every struct size, field offset, ioctl number and constant matches <linux/kvm.h> and <signal.h>", () => {
    const { source, expected } = generateC();
    const dir = mkdtempSync(join(tmpdir(), "bunvmm-structs-"));
    writeFileSync(join(dir, "kvm-structs.c"), source);
    const cc = Bun.spawnSync(["gcc", "-Wall", "-o", join(dir, "kvm-structs"), join(dir, "kvm-structs.c")]);
    expect(cc.stderr.toString()).toBe("");
    expect(cc.exitCode).toBe(0);
    const run = Bun.spawnSync([join(dir, "kvm-structs")]);
    expect(run.exitCode).toBe(0);
    const actual = new Map<string, number>();
    for (const line of run.stdout.toString().trim().split("\n")) {
      const at = line.lastIndexOf(" ");
      actual.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
    const mismatches = [...expected]
      .filter(([k, v]) => actual.get(k) !== v)
      .map(([k, v]) => `${k}: ours ${v}, header ${actual.get(k)}`);
    expect(mismatches).toEqual([]);
    expect(actual.size).toBe(expected.size);
  });
});
