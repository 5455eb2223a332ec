/** bzImage setup-header parsing and loading: Debian's real kernel, then one crafted file per error. */

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  SETUP_HEADER_LAYOUT,
  SETUP_HEADER_OFFSET,
  XLF_KERNEL_64,
} from "../../../src/arch/x86_64/boot-params.ts";
import {
  bzImageExtent,
  bzImageLoadAddress,
  loadBzImage,
  parseBzImage,
  payloadCompression,
  protocolText,
} from "../../../src/arch/x86_64/bzimage.ts";
import { ramRanges } from "../../../src/arch/x86_64/layout.ts";
import { viewOf } from "../../../src/arch/x86_64/struct-layout.ts";
import { GuestMemory } from "../../../src/memory/guest-memory.ts";
import { MIB } from "../../../src/numbers.ts";
import { reason } from "../../helpers/boot-error-reason.ts";
import { craftBzImage } from "../../helpers/crafted-kernels.ts";
import { debianKernel } from "../../helpers/debian-kernel.ts";

describe("parseBzImage() on Debian's cloud kernel", () => {
  test("reads a 2.12+ header with a 64-bit entry, loaded high and relocatable to 16 MiB", () => {
    const image = readFileSync(debianKernel().bzImagePath);
    const bz = parseBzImage(image);
    expect(bz.version).toBeGreaterThanOrEqual(0x020c);
    expect(protocolText(bz.version)).toMatch(/^2\.\d\d$/);
    expect(bz.xloadflags & XLF_KERNEL_64).toBe(XLF_KERNEL_64);
    expect(bz.relocatable).toBe(true);
    expect(bz.kernelAlignment).toBe(0x20_0000); // CONFIG_PHYSICAL_ALIGN
    expect(bz.prefAddress).toBe(0x100_0000); // CONFIG_PHYSICAL_START
    expect(bzImageLoadAddress(bz)).toBe(0x100_0000);
    expect(bz.cmdlineSize).toBe(2047);
    expect(bz.initrdAddrMax).toBe(0x7fff_ffff);
    // The file is exactly setup + kernel; the kernel needs more room than its size to decompress.
    expect(bz.setupSize + bz.kernel.length).toBe(image.length);
    expect(bz.initSize).toBeGreaterThan(bz.kernel.length);
    expect(bzImageExtent(bz)).toEqual({ start: 0x100_0000, end: 0x100_0000 + bz.initSize });
    expect(payloadCompression(bz)).toBe("lz4");
    // The header copy ends where the header's own jump says (0x202 + the byte at 0x201).
    expect(SETUP_HEADER_OFFSET + bz.setupHeader.length).toBe(0x202 + image[0x201]!);
  });

  test("loadBzImage() copies the protected-mode kernel to 16 MiB and zeroes the rest of init_size", () => {
    const bz = parseBzImage(readFileSync(debianKernel().bzImagePath));
    const mem = GuestMemory.allocate(ramRanges(128 * MIB));
    try {
      mem.slice(0x100_0000 + bz.kernel.length, 16).fill(0xaa);
      const range = loadBzImage(mem, bz, 128 * MIB);
      expect(range).toEqual({ start: 0x100_0000, end: 0x100_0000 + bz.initSize });
      expect(mem.read(0x100_0000, 4096)).toEqual(bz.kernel.subarray(0, 4096));
      expect(mem.read(0x100_0000 + bz.kernel.length - 16, 16)).toEqual(
        bz.kernel.subarray(bz.kernel.length - 16),
      );
      expect(mem.read(0x100_0000 + bz.kernel.length, 16).every((b) => b === 0)).toBe(true);
    } finally {
      mem.close();
    }
  });

  test("loadBzImage() refuses RAM smaller than pref_address + init_size, naming the RAM that would do", () => {
    const bz = parseBzImage(readFileSync(debianKernel().bzImagePath));
    const mem = GuestMemory.allocate(ramRanges(32 * MIB));
    try {
      const end = 0x100_0000 + bz.initSize;
      expect(reason(() => loadBzImage(mem, bz, 32 * MIB))).toBe(
        `the kernel needs guest RAM [0x1000000, 0x${end.toString(16)}) (pref_address + init_size) but RAM below 4 GiB ` +
          `ends at 0x2000000: give the VM at least ${Math.ceil(end / MIB)} MiB`,
      );
    } finally {
      mem.close();
    }
  });
});

describe("parseBzImage() errors", () => {
  test("a crafted image parses (the base every error case breaks)", () => {
    const bz = parseBzImage(craftBzImage());
    expect(bz.version).toBe(0x020f);
    expect(bz.setupSize).toBe(1024);
    expect(bz.kernel.length).toBe(0x1000);
  });

  test.each([
    ["an empty file", () => new Uint8Array(0), "not a bzImage: no HdrS magic at 0x202"],
    [
      "an ELF file",
      () => new Uint8Array([0x7f, 0x45, 0x4c, 0x46, ...new Uint8Array(0x300)]),
      "not a bzImage: no HdrS magic at 0x202",
    ],
    [
      "a wrong magic",
      () => craftBzImage({ header: { header: 0x5372_6449 } }),
      "not a bzImage: no HdrS magic at 0x202",
    ],
    [
      "a wrong boot_flag",
      () => craftBzImage({ header: { boot_flag: 0x1234 } }),
      "not a bzImage: boot_flag at 0x1fe is 0x1234, expected 0xaa55",
    ],
    [
      "protocol 2.06",
      () => craftBzImage({ header: { version: 0x0206 } }),
      "boot protocol 2.06 is too old: bunvmm needs 2.12 (64-bit entry)",
    ],
    [
      "protocol 2.11 (no xloadflags)",
      () => craftBzImage({ header: { version: 0x020b } }),
      "boot protocol 2.11 is too old: bunvmm needs 2.12 (64-bit entry)",
    ],
    [
      "a header shorter than init_size",
      () => craftBzImage({ header: { jump: 0x50eb } }),
      "not a bzImage: its setup header ends at 0x252, before init_size at 0x260",
    ],
    [
      "a zImage",
      () => craftBzImage({ header: { loadflags: 0 } }),
      "a zImage (LOADED_HIGH clear in loadflags) cannot be booted: bunvmm loads kernels at or above 1 MiB",
    ],
    [
      "no 64-bit entry",
      () => craftBzImage({ header: { xloadflags: 0 } }),
      "this kernel has no 64-bit entry point (XLF_KERNEL_64 clear in xloadflags): bunvmm enters bzImages in 64-bit mode",
    ],
  ])("%s", (_name, image, expected) => {
    expect(reason(() => parseBzImage(image()))).toBe(expected);
  });

  test("a file cut inside the kernel: setup + syssize × 16 against the file size", () => {
    const image = craftBzImage().subarray(0, 1024 + 0x800);
    expect(reason(() => parseBzImage(image))).toBe(
      "truncated: setup says 5120 bytes (1024 of setup + 4096 of kernel), file has 3072",
    );
  });

  test("a file cut right after the magic", () => {
    expect(reason(() => parseBzImage(craftBzImage().subarray(0, 0x206)))).toBe(
      "truncated: the file ends at 518 bytes, inside the setup header",
    );
  });

  test("a pref_address no guest can have", () => {
    const image = craftBzImage();
    viewOf(image).setBigUint64(
      SETUP_HEADER_OFFSET + SETUP_HEADER_LAYOUT.fields.pref_address.offset,
      1n << 53n,
      true,
    );
    expect(reason(() => parseBzImage(image))).toBe(
      "pref_address 0x20000000000000 is beyond any guest address",
    );
  });

  test("a file cut inside the setup header", () => {
    expect(reason(() => parseBzImage(craftBzImage().subarray(0, 0x240)))).toBe(
      "truncated: the setup header ends at 0x26c, the file has 576 bytes",
    );
  });

  test("setup_sects = 0 means 4 sectors", () => {
    const image = craftBzImage({ header: { setup_sects: 0 } });
    expect(reason(() => parseBzImage(image))).toBe(
      "truncated: setup says 6656 bytes (2560 of setup + 4096 of kernel), file has 5120",
    );
  });

  test("a kernel with pref_address below 1 MiB or too big for RAM is refused by loadBzImage()", () => {
    const mem = GuestMemory.allocate(ramRanges(16 * MIB));
    try {
      const low = parseBzImage(craftBzImage({ header: { pref_address: 0x8_0000 } }));
      expect(reason(() => loadBzImage(mem, low, 16 * MIB))).toBe(
        "pref_address 0x80000 is below 1 MiB, where bunvmm keeps the boot structures",
      );
      const big = parseBzImage(craftBzImage({ header: { init_size: 0x100_0001 } }));
      expect(reason(() => loadBzImage(mem, big, 16 * MIB))).toBe(
        "the kernel needs guest RAM [0x1000000, 0x2000001) (pref_address + init_size) but RAM below 4 GiB ends at 0x1000000: give the VM at least 33 MiB",
      );
      const noPref = parseBzImage(craftBzImage({ header: { pref_address: 0 } }));
      expect(bzImageLoadAddress(noPref)).toBe(0x100_0000);
    } finally {
      mem.close();
    }
  });
});
