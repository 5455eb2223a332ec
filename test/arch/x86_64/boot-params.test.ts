/** The zero page: layouts against <asm/bootparam.h>, and what buildZeroPage writes. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { LinuxBootError } from "../../../src/arch/x86_64/boot-error.ts";
import {
  BOOT_E820_ENTRY_LAYOUT,
  BOOT_PARAMS_LAYOUT,
  buildZeroPage,
  CAN_USE_HEAP,
  HEAP_END_PTR,
  KASLR_FLAG,
  KEEP_SEGMENTS,
  LOADED_HIGH,
  QUIET_FLAG,
  SETUP_HEADER_LAYOUT,
  SETUP_HEADER_OFFSET,
  X86_SUBARCH_PC,
  XLF_CAN_BE_LOADED_ABOVE_4G,
  XLF_KERNEL_64,
} from "../../../src/arch/x86_64/boot-params.ts";
import { parseBzImage } from "../../../src/arch/x86_64/bzimage.ts";
import {
  E820_ACPI,
  E820_MAX_ENTRIES_ZEROPAGE,
  E820_NVS,
  E820_PMEM,
  E820_RAM,
  E820_RESERVED,
  E820_UNUSABLE,
  e820Table,
} from "../../../src/arch/x86_64/e820.ts";
import { getField, viewOf } from "../../../src/arch/x86_64/struct-layout.ts";
import { cLayoutMismatches } from "../../helpers/c-layout.ts";
import { debianKernel } from "../../helpers/debian-kernel.ts";

const HDR = SETUP_HEADER_LAYOUT.fields;
const BP = BOOT_PARAMS_LAYOUT.fields;

describe("boot_params layout", () => {
  test("every size, offset and constant matches <asm/bootparam.h> and <asm/e820.h>", () => {
    const mismatches = cLayoutMismatches({
      prelude: ["#include <asm/bootparam.h>", "#include <asm/e820.h>"],
      layouts: [SETUP_HEADER_LAYOUT, BOOT_PARAMS_LAYOUT, BOOT_E820_ENTRY_LAYOUT],
      constants: {
        LOADED_HIGH,
        KASLR_FLAG,
        QUIET_FLAG,
        KEEP_SEGMENTS,
        CAN_USE_HEAP,
        XLF_KERNEL_64,
        XLF_CAN_BE_LOADED_ABOVE_4G,
        X86_SUBARCH_PC,
        E820_MAX_ENTRIES_ZEROPAGE,
        E820_RAM,
        E820_RESERVED,
        E820_ACPI,
        E820_NVS,
        E820_UNUSABLE,
        E820_PMEM,
        // <asm/e820.h>'s legacy names for where the table sits in the zero page.
        E820MAP: BP.e820_table.offset,
        E820NR: BP.e820_entries.offset,
        E820MAX: E820_MAX_ENTRIES_ZEROPAGE,
      },
    });
    expect(mismatches).toEqual([]);
  });
});

describe("buildZeroPage()", () => {
  test("copies the kernel's own setup header and fills the loader's fields", () => {
    const bz = parseBzImage(readFileSync(debianKernel().bzImagePath));
    const e820 = e820Table(6 << 30);
    const page = buildZeroPage({
      setupHeader: bz.setupHeader,
      cmdlineAddress: 0x20000,
      initramfs: { address: 0xbf00_0000, size: 0x12_3456 },
      rsdpAddress: 0xe0000,
      e820,
    });
    const v = viewOf(page);
    const h = SETUP_HEADER_OFFSET;
    expect(page.length).toBe(4096);
    // The header as the kernel wrote it, except the fields a loader writes.
    expect(getField(v, h, HDR.header)).toBe(0x53726448);
    expect(getField(v, h, HDR.version)).toBe(bz.version);
    expect(getField(v, h, HDR.init_size)).toBe(bz.initSize);
    expect(getField(v, h, HDR.pref_address)).toBe(bz.prefAddress);
    expect(getField(v, h, HDR.cmdline_size)).toBe(bz.cmdlineSize);
    expect(getField(v, h, HDR.setup_sects)).toBe(bz.setupSize / 512 - 1);
    expect(getField(v, h, HDR.type_of_loader)).toBe(0xff);
    expect(getField(v, h, HDR.vid_mode)).toBe(0xffff);
    expect(getField(v, h, HDR.loadflags) & (LOADED_HIGH | CAN_USE_HEAP)).toBe(LOADED_HIGH | CAN_USE_HEAP);
    expect(getField(v, h, HDR.heap_end_ptr)).toBe(HEAP_END_PTR);
    expect(getField(v, h, HDR.cmd_line_ptr)).toBe(0x20000);
    expect(getField(v, 0, BP.ext_cmd_line_ptr)).toBe(0);
    expect(getField(v, h, HDR.ramdisk_image)).toBe(0xbf00_0000);
    expect(getField(v, h, HDR.ramdisk_size)).toBe(0x12_3456);
    expect(getField(v, 0, BP.ext_ramdisk_image)).toBe(0);
    expect(getField(v, h, HDR.hardware_subarch)).toBe(X86_SUBARCH_PC);
    expect(getField(v, 0, BP.acpi_rsdp_addr)).toBe(0xe0000);
    expect(getField(v, 0, BP.sentinel)).toBe(0);
    // e820 table, entry by entry.
    expect(getField(v, 0, BP.e820_entries)).toBe(e820.length);
    const E = BOOT_E820_ENTRY_LAYOUT;
    const read = e820.map((_, i) => {
      const at = BP.e820_table.offset + i * E.size;
      return {
        addr: getField(v, at, E.fields.addr),
        size: getField(v, at, E.fields.size),
        type: getField(v, at, E.fields.type),
      };
    });
    expect(read).toEqual(e820);
    // Nothing past the last entry.
    expect(
      page
        .subarray(BP.e820_table.offset + e820.length * E.size, BP.e820_table.offset + BP.e820_table.size)
        .every((b) => b === 0),
    ).toBe(true);
  });

  test("splits addresses above 4 GiB into the ext_ fields and leaves absent ones zero", () => {
    const header = new Uint8Array(SETUP_HEADER_LAYOUT.size);
    const page = buildZeroPage({
      setupHeader: header,
      cmdlineAddress: 0x1_2345_6000,
      initramfs: { address: 0x2_0000_1000, size: 0x1_0000_0010 },
      e820: [],
    });
    const v = viewOf(page);
    const h = SETUP_HEADER_OFFSET;
    expect([getField(v, h, HDR.cmd_line_ptr), getField(v, 0, BP.ext_cmd_line_ptr)]).toEqual([0x2345_6000, 1]);
    expect([getField(v, h, HDR.ramdisk_image), getField(v, 0, BP.ext_ramdisk_image)]).toEqual([0x1000, 2]);
    expect([getField(v, h, HDR.ramdisk_size), getField(v, 0, BP.ext_ramdisk_size)]).toEqual([0x10, 1]);
    expect(getField(v, 0, BP.acpi_rsdp_addr)).toBe(0);
    expect(getField(v, 0, BP.e820_entries)).toBe(0);
  });

  test("refuses a memory map longer than the zero page's 128 entries", () => {
    const e820 = Array.from({ length: 129 }, (_, i) => ({ addr: i * 0x1000, size: 0x1000, type: E820_RAM }));
    expect(() => buildZeroPage({ setupHeader: new Uint8Array(123), cmdlineAddress: 0x20000, e820 })).toThrow(
      new LinuxBootError("the memory map has 129 entries; the zero page holds 128"),
    );
  });
});
