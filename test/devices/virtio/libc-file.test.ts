/**
 * ffi/libc-file.ts constants and struct flock offsets against <fcntl.h> and <linux/falloc.h>: a
 * generated C program prints what the headers say (with _GNU_SOURCE first, which F_OFD_* and O_DIRECT
 * need, so it cannot share test/arch/x86_64/_c-layout.ts, whose program starts with <stdio.h>).
 */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FILE_CHECKED_CONSTANTS } from "../../../ffi/libc-file.ts";

test("open flags, fallocate modes, OFD lock commands and struct flock match the C headers", () => {
  const entries = Object.entries(FILE_CHECKED_CONSTANTS);
  const source = [
    "#define _GNU_SOURCE",
    "#include <stdio.h>",
    "#include <stddef.h>",
    "#include <fcntl.h>",
    "#include <linux/falloc.h>",
    "int main(void) {",
    ...entries.map(([expr]) => `  printf("%llu\\n", (unsigned long long)(${expr}));`),
    "  return 0;",
    "}",
  ].join("\n");
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-libc-file-"));
  writeFileSync(join(dir, "c.c"), source);
  const cc = Bun.spawnSync(["gcc", "-Wall", "-o", join(dir, "c"), join(dir, "c.c")]);
  expect(cc.stderr.toString()).toBe("");
  const values = Bun.spawnSync([join(dir, "c")])
    .stdout.toString()
    .trim()
    .split("\n")
    .map(Number);
  const mismatches = entries
    .filter(([, ours], i) => values[i] !== ours)
    .map(([name, ours]) => `${name}: ours ${ours}, C ${values[entries.findIndex(([n]) => n === name)]}`);
  expect(mismatches).toEqual([]);
  expect(values.length).toBe(entries.length);
});
