/** Initramfs placement: as high as allowed, page-aligned, above the kernel; errors name the binding limit. */

import { describe, expect, test } from "bun:test";
import { placeInitramfs } from "../../../src/arch/x86_64/initrd.ts";
import { MIB } from "../../../src/numbers.ts";
import { reason } from "../../helpers/boot-error-reason.ts";

describe("placeInitramfs()", () => {
  test.each([
    [
      "at the top of RAM, page-aligned down",
      0x1234,
      { lowest: 0x400_0000, ramTop: 256 * MIB },
      256 * MIB - 0x2000,
    ],
    ["exactly filling the space above the kernel", 4 * MIB, { lowest: 12 * MIB, ramTop: 16 * MIB }, 12 * MIB],
    [
      "below initrd_addr_max when that is lower",
      0x1000,
      { lowest: 0x400_0000, ramTop: 0xc000_0000, addrMax: 0x7fff_ffff },
      0x7fff_f000,
    ],
    [
      "below RAM's top when initrd_addr_max is higher",
      0x1000,
      { lowest: 0x300_0000, ramTop: 64 * MIB + 0x800, addrMax: 0x7fff_ffff },
      64 * MIB - 0x1000,
    ],
  ])("%s", (_name, size, bounds, expected) => {
    expect(placeInitramfs(size, bounds)).toBe(expected);
  });

  test("refuses an initramfs bigger than the RAM above the kernel, naming the RAM that would do", () => {
    expect(reason(() => placeInitramfs(5 * MIB, { lowest: 12 * MIB - 100, ramTop: 16 * MIB }))).toBe(
      "the initramfs (5242880 bytes, 5.0 MiB) does not fit between the kernel's end at 0xc00000 and the top of RAM at 0x1000000: " +
        "give the VM at least 17 MiB",
    );
  });

  test("names initrd_addr_max when it is the limit that binds", () => {
    expect(
      reason(() =>
        placeInitramfs(0x1000_0000, { lowest: 0x7800_0000, ramTop: 0xc000_0000, addrMax: 0x7fff_ffff }),
      ),
    ).toBe(
      "the initramfs (268435456 bytes, 256.0 MiB) does not fit between the kernel's end at 0x78000000 and 0x80000000, " +
        "the highest address this kernel accepts for it (initrd_addr_max)",
    );
  });

  test("refuses an empty initramfs", () => {
    expect(reason(() => placeInitramfs(0, { lowest: 0, ramTop: 16 * MIB }))).toBe("the initramfs is empty");
  });
});
