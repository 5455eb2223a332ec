/** The command line in guest RAM and its limits. */
import { describe, expect, test } from "bun:test";
import { LinuxBootError } from "../../../src/arch/x86_64/boot-error.ts";
import { COMMAND_LINE_SIZE, encodeCmdline, writeCmdline } from "../../../src/arch/x86_64/cmdline.ts";
import { CMDLINE_ADDRESS, ramRanges } from "../../../src/arch/x86_64/layout.ts";
import { GuestMemory } from "../../../src/memory/guest-memory.ts";

function withMemory(f: (mem: GuestMemory) => void): void {
  const mem = GuestMemory.allocate(ramRanges(1 << 20));
  try {
    f(mem);
  } finally {
    mem.close();
  }
}

describe("writeCmdline()", () => {
  test("writes UTF-8 and a NUL at CMDLINE_ADDRESS", () => {
    withMemory((mem) => {
      mem.slice(CMDLINE_ADDRESS, 64).fill(0xff);
      const cmdline = "console=ttyS0 root=/dev/vda é";
      expect(writeCmdline(mem, cmdline, { maxBytes: 2047, source: "cmdline_size" })).toEqual({
        address: 0x20000,
        size: 31,
      });
      expect(new TextDecoder().decode(mem.read(CMDLINE_ADDRESS, 30))).toBe(cmdline);
      expect(mem.read(CMDLINE_ADDRESS + 30, 1)[0]).toBe(0);
    });
  });

  test("an empty command line is a lone NUL", () => {
    withMemory((mem) => expect(writeCmdline(mem, "", { maxBytes: 0, source: "cmdline_size" }).size).toBe(1));
    expect([...encodeCmdline("")]).toEqual([0]);
  });

  test("accepts exactly the kernel's limit and refuses one byte more, counting bytes, not characters", () => {
    withMemory((mem) => {
      const limit = { maxBytes: COMMAND_LINE_SIZE - 1, source: "COMMAND_LINE_SIZE" };
      expect(writeCmdline(mem, "x".repeat(2047), limit).size).toBe(2048);
      let error: unknown;
      try {
        writeCmdline(mem, "é".repeat(1024), limit);
      } catch (e) {
        error = e;
      }
      expect(error).toEqual(
        new LinuxBootError(
          "payload.cmdline is 2048 bytes; this kernel accepts at most 2047 (COMMAND_LINE_SIZE)",
        ),
      );
    });
  });

  test("a kernel limit larger than bunvmm's 64 KiB area is capped by the area", () => {
    withMemory((mem) => {
      expect(() =>
        writeCmdline(mem, "x".repeat(65536), { maxBytes: 1 << 20, source: "cmdline_size" }),
      ).toThrow(
        "payload.cmdline is 65536 bytes; this kernel accepts at most 65535 (bunvmm's command-line area)",
      );
    });
  });
});
