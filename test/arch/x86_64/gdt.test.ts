/** The boot GDT: descriptor encoding and the segment registers decoded from it. */
import { describe, expect, test } from "bun:test";
import { BOOT_CS_SELECTOR, BOOT_DS_SELECTOR } from "../../../src/arch/x86_64/cpu-state.ts";
import {
  BOOT_GDT,
  BOOT_GDT_LIMIT,
  bootGdtBytes,
  bootSegment,
  gdtEntry,
  segmentFromDescriptor,
} from "../../../src/arch/x86_64/gdt.ts";

describe("BOOT_GDT", () => {
  test("is null, null, __BOOT_CS (64-bit code) at 0x10, __BOOT_DS (flat data) at 0x18", () => {
    expect(BOOT_GDT).toEqual([0n, 0n, 0x00af_9b00_0000_ffffn, 0x00cf_9300_0000_ffffn]);
    expect(BOOT_GDT_LIMIT).toBe(31);
    expect(BOOT_CS_SELECTOR).toBe(0x10);
    expect(BOOT_DS_SELECTOR).toBe(0x18);
  });

  test("bootGdtBytes() lays the descriptors out little-endian", () => {
    const bytes = bootGdtBytes();
    expect(bytes.length).toBe(32);
    expect([...bytes.subarray(16, 24)]).toEqual([0xff, 0xff, 0, 0, 0, 0x9b, 0xaf, 0x00]);
  });

  test("gdtEntry() places base and limit bits where the SDM puts them", () => {
    expect(gdtEntry(0xc093, 0x1234_5678, 0xa_bcde)).toBe(0x12ca_9334_5678_bcden);
  });
});

describe("segmentFromDescriptor()", () => {
  test("__BOOT_CS: 64-bit (L=1, D/B=0), execute/read, present, 4 GiB limit", () => {
    expect(bootSegment(BOOT_CS_SELECTOR)).toEqual({
      base: 0n,
      limit: 0xffff_ffff,
      selector: 0x10,
      type: 0xb,
      s: 1,
      dpl: 0,
      present: 1,
      avl: 0,
      l: 1,
      db: 0,
      g: 1,
      unusable: 0,
    });
  });

  test("__BOOT_DS: read/write data, D/B=1, 4 GiB limit", () => {
    expect(bootSegment(BOOT_DS_SELECTOR)).toEqual({
      base: 0n,
      limit: 0xffff_ffff,
      selector: 0x18,
      type: 0x3,
      s: 1,
      dpl: 0,
      present: 1,
      avl: 0,
      l: 0,
      db: 1,
      g: 1,
      unusable: 0,
    });
  });

  test("decodes base and a byte-granular limit, and marks a null descriptor unusable", () => {
    const s = segmentFromDescriptor(gdtEntry(0x0093, 0x1234_5678, 0x1_2345), 0x20);
    expect([s.base, s.limit, s.g]).toEqual([0x1234_5678n, 0x1_2345, 0]);
    expect(segmentFromDescriptor(0n, 0).unusable).toBe(1);
  });
});
