/** ELF64 parsing: layouts against <elf.h>, the real vmlinux, and crafted broken files. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  EI_CLASS,
  EI_DATA,
  ELF64_EHDR_LAYOUT,
  ELF64_NHDR_LAYOUT,
  ELF64_PHDR_LAYOUT,
  ELF64_SHDR_LAYOUT,
  ELFCLASS64,
  ELFDATA2LSB,
  EM_X86_64,
  PT_LOAD,
  PT_NOTE,
  parseElf64,
  SHT_NOTE,
} from "../../../src/arch/x86_64/elf.ts";
import { setField, viewOf } from "../../../src/arch/x86_64/struct-layout.ts";
import { reason } from "../../helpers/boot-error-reason.ts";
import { cLayoutMismatches } from "../../helpers/c-layout.ts";
import { craftElf } from "../../helpers/crafted-kernels.ts";
import { debianKernel } from "../../helpers/debian-kernel.ts";

describe("ELF layouts", () => {
  test("every size, offset and constant matches <elf.h>", () => {
    const mismatches = cLayoutMismatches({
      prelude: ["#include <elf.h>"],
      layouts: [ELF64_EHDR_LAYOUT, ELF64_PHDR_LAYOUT, ELF64_SHDR_LAYOUT, ELF64_NHDR_LAYOUT],
      constants: { EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, EM_X86_64, PT_LOAD, PT_NOTE, SHT_NOTE },
    });
    expect(mismatches).toEqual([]);
  });
});

describe("parseElf64()", () => {
  test("reads the Debian vmlinux: PT_LOAD segments at 16 MiB and up, and its Xen notes", () => {
    const elf = parseElf64(readFileSync(debianKernel().vmlinuxPath));
    const loads = elf.segments.filter((s) => s.type === PT_LOAD);
    expect(loads.length).toBeGreaterThanOrEqual(2);
    expect(loads[0]!.paddr).toBe(0x100_0000);
    for (const s of loads) expect(s.filesz).toBeLessThanOrEqual(s.memsz);
    expect(elf.notes.some((n) => n.name === "Xen")).toBe(true);
    expect(elf.notes.some((n) => n.name === "GNU")).toBe(true);
  });

  test("a crafted ELF: one PT_LOAD, one PT_NOTE with the Xen note", () => {
    const elf = parseElf64(craftElf({ code: new Uint8Array([0xf4]), pvhEntry: 0x100_0000 }));
    expect(elf.segments.map((s) => [s.type, s.paddr, s.filesz])).toEqual([
      [PT_LOAD, 0x100_0000, 1],
      [PT_NOTE, 0, 24],
    ]);
    expect(elf.notes).toEqual([{ name: "Xen", type: 18, desc: new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0]) }]);
  });

  test("finds the note through an SHT_NOTE section when no PT_NOTE segment describes it", () => {
    const elf = parseElf64(craftElf({ pvhEntry: 0x100_0040, noteIn: "section" }));
    expect(elf.segments.map((s) => s.type)).toEqual([PT_LOAD]);
    expect(elf.notes).toEqual([{ name: "Xen", type: 18, desc: new Uint8Array([0x40, 0, 0, 1, 0, 0, 0, 0]) }]);
  });

  test.each([
    ["a bzImage", () => new Uint8Array(0x400), "not an ELF file: no \\x7fELF magic at 0"],
    [
      "a 32-bit ELF",
      () => craftElf({ elfClass: 1 }),
      "ELF class 1 is not supported: bunvmm boots 64-bit (ELFCLASS64) vmlinux files",
    ],
    [
      "another machine",
      () => {
        const f = craftElf();
        setField(viewOf(f), 0, ELF64_EHDR_LAYOUT.fields.e_machine, 183); // EM_AARCH64
        return f;
      },
      "ELF machine 183 is not x86_64 (62)",
    ],
    [
      "a file cut inside its segment",
      () => craftElf({ code: new Uint8Array(64) }).subarray(0, 200),
      "truncated: segment 0 [0xd0, 0x110) lies past the end of the 200-byte file",
    ],
    [
      "program headers past the end",
      () => craftElf().subarray(0, 100),
      "truncated: the program header table [0x40, 0xb0) lies past the end of the 100-byte file",
    ],
    [
      "a segment with p_filesz > p_memsz",
      () => {
        const f = craftElf();
        setField(viewOf(f), ELF64_EHDR_LAYOUT.size, ELF64_PHDR_LAYOUT.fields.p_memsz, 1);
        return f;
      },
      "segment 0 has more file bytes (256) than memory bytes (1)",
    ],
    [
      "a note that runs past its segment",
      () => {
        const f = craftElf();
        const note = ELF64_EHDR_LAYOUT.size + 2 * ELF64_PHDR_LAYOUT.size;
        setField(viewOf(f), note, ELF64_NHDR_LAYOUT.fields.n_descsz, 64);
        return f;
      },
      "malformed ELF note at 0xb0: it runs past its note area",
    ],
  ])("refuses %s", (_name, file, expected) => {
    expect(reason(() => parseElf64(file()))).toBe(expected);
  });
});
