/**
 * Compares byte layouts (ffi/layout.ts) and constants with what gcc says for C headers or declarations:
 * a generated C program prints `sizeof`/`offsetof` of every field and the value of every constant, and
 * the test lists each mismatch. Used for the KVM, glibc, virtio and boot-protocol layouts alike.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CLayout } from "../../ffi/layout.ts";

export interface CCheck {
  /** `#include` lines or declarations, in order. */
  readonly prelude: readonly string[];
  readonly layouts: readonly CLayout[];
  /** Our constants by the name the header gives them. */
  readonly constants?: Readonly<Record<string, number>>;
}

/** Mismatches as "what: ours X, C Y" lines; empty when everything agrees. Throws if gcc fails. */
export function cLayoutMismatches(check: CCheck): string[] {
  const lines: string[] = [];
  const expected = new Map<string, number>();
  const print = (key: string, expr: string, value: number) => {
    lines.push(`  printf("%s %llu\\n", "${key}", (unsigned long long)(${expr}));`);
    expected.set(key, value);
  };
  for (const layout of check.layouts) {
    const t = layout.cType;
    print(`sizeof(${t})`, `sizeof(${t})`, layout.size);
    for (const [name, field] of Object.entries(layout.fields)) {
      print(`offsetof(${t}, ${name})`, `offsetof(${t}, ${name})`, field.offset);
      if (field.size > 0) print(`sizeof(${t}.${name})`, `sizeof(((${t} *)0)->${name})`, field.size);
    }
  }
  for (const [name, value] of Object.entries(check.constants ?? {})) print(name, name, value);
  const source = [
    "#define _GNU_SOURCE",
    "#include <stdio.h>",
    "#include <stddef.h>",
    ...check.prelude,
    "int main(void) {",
    ...lines,
    "  return 0;",
    "}",
  ].join("\n");
  const dir = mkdtempSync(join(tmpdir(), "bunvmm-arch-layout-"));
  writeFileSync(join(dir, "layout.c"), source);
  const cc = Bun.spawnSync(["gcc", "-Wall", "-o", join(dir, "layout"), join(dir, "layout.c")]);
  if (cc.exitCode !== 0) throw new Error(`gcc failed:\n${cc.stderr.toString()}`);
  const run = Bun.spawnSync([join(dir, "layout")]);
  const actual = new Map<string, number>();
  for (const line of run.stdout.toString().trim().split("\n")) {
    const at = line.lastIndexOf(" ");
    actual.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return [...expected]
    .filter(([k, v]) => actual.get(k) !== v)
    .map(([k, v]) => `${k}: ours ${v}, C ${actual.get(k)}`);
}
