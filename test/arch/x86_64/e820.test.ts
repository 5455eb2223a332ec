/** The memory map for RAM sizes below, at and across the 32-bit hole. */

import { describe, expect, test } from "bun:test";
import { describeE820, E820_RAM, E820_RESERVED, e820Table } from "../../../src/arch/x86_64/e820.ts";
import { MIB } from "../../../src/numbers.ts";

const GIB = 1 << 30;
const LOW = { addr: 0, size: 0xa_0000, type: E820_RAM };
/** The ISA hole, reserved whole: it holds the ACPI tables (0xe0000-0xfffff). */
const BIOS = { addr: 0xa_0000, size: 0x6_0000, type: E820_RESERVED };

describe("e820Table()", () => {
  test.each([
    ["16M", 16 * MIB, [LOW, BIOS, { addr: MIB, size: 15 * MIB, type: E820_RAM }]],
    ["256M", 256 * MIB, [LOW, BIOS, { addr: MIB, size: 255 * MIB, type: E820_RAM }]],
    [
      "3G (RAM ends where the hole starts)",
      3 * GIB,
      [LOW, BIOS, { addr: MIB, size: 3 * GIB - MIB, type: E820_RAM }],
    ],
    [
      "4G (1 GiB moves above 4 GiB)",
      4 * GIB,
      [
        LOW,
        BIOS,
        { addr: MIB, size: 3 * GIB - MIB, type: E820_RAM },
        { addr: 4 * GIB, size: GIB, type: E820_RAM },
      ],
    ],
    [
      "6G",
      6 * GIB,
      [
        LOW,
        BIOS,
        { addr: MIB, size: 3 * GIB - MIB, type: E820_RAM },
        { addr: 4 * GIB, size: 3 * GIB, type: E820_RAM },
      ],
    ],
    ["1M (the smallest VM: nothing above 1 MiB)", MIB, [LOW, BIOS]],
  ])("%s", (_name, size, expected) => {
    expect(e820Table(size)).toEqual(expected);
  });

  test("entries are sorted, disjoint, and RAM never reaches into [3 GiB, 4 GiB)", () => {
    for (const size of [16 * MIB, 3 * GIB + 4096, 64 * GIB]) {
      const t = e820Table(size);
      for (let i = 1; i < t.length; i++)
        expect(t[i]!.addr).toBeGreaterThanOrEqual(t[i - 1]!.addr + t[i - 1]!.size);
      for (const e of t) expect(e.addr >= 4 * GIB || e.addr + e.size <= 3 * GIB).toBe(true);
      const ram = t.filter((e) => e.type === E820_RAM).reduce((n, e) => n + e.size, 0);
      expect(ram).toBe(size - (MIB - 0xa_0000)); // all RAM but the 384 KiB below 1 MiB
    }
  });

  test("describeE820() prints entries the way Linux's boot log does", () => {
    expect(describeE820(e820Table(256 * MIB))).toEqual([
      "[mem 0x0000000000000000-0x000000000009ffff] usable",
      "[mem 0x00000000000a0000-0x00000000000fffff] reserved",
      "[mem 0x0000000000100000-0x000000000fffffff] usable",
    ]);
  });
});
