/**
 * Guest RAM of every size the config schema allows: the host views come in windows (Bun cannot make one
 * view longer than 4 GiB over foreign memory), so 16 GiB of RAM maps, reads and writes at the top, across
 * window boundaries, from an attached copy, and VMs of 16 and 64 GiB boot with a guest that touches
 * their last page.
 */
import { describe, expect, test } from "bun:test";
import { GuestMemory, GuestMemoryError, Vm } from "bunvmm";
import { HIGH_RAM_START, MMIO_HOLE_START, ramRanges } from "../../src/arch/x86_64/layout.ts";
import { MEMORY_SIZE_MAX } from "../../src/config/limits.ts";
import { WINDOW_BYTES } from "../../src/memory/guest-memory.ts";
import { rawGuestConfig, waitUntil } from "../helpers/guests.ts";

const GIB = 2 ** 30;
const SIXTEEN_GIB = 16 * GIB;
/** Guest-physical end of 16 GiB of RAM: the part above the 32-bit hole continues at 4 GiB. */
const END_OF_16_GIB = HIGH_RAM_START + SIXTEEN_GIB - MMIO_HOLE_START;

/** test/guests/high-memory.S: where it reports. */
const SEEN = 0x9000;
const DONE = 0x9004;
const DONE_MAGIC = 0x600df00d;

describe("GuestMemory", () => {
  test("16 GiB (MAP_NORESERVE) reads and writes at the very top of the high region", () => {
    const memory = GuestMemory.allocate(ramRanges(SIXTEEN_GIB));
    try {
      expect(memory.size).toBe(SIXTEEN_GIB);
      memory.writeU64(END_OF_16_GIB - 8, 0x1122_3344_5566_7788n);
      expect(memory.readU64(END_OF_16_GIB - 8)).toBe(0x1122_3344_5566_7788n);
      expect(memory.readU32(END_OF_16_GIB - 4)).toBe(0x1122_3344);
      memory.write(END_OF_16_GIB - 3, new Uint8Array([1, 2, 3]));
      expect([...memory.read(END_OF_16_GIB - 3, 3)]).toEqual([1, 2, 3]);
      expect(() => memory.readU32(END_OF_16_GIB - 2)).toThrow(GuestMemoryError);
      expect(() => memory.readU32(END_OF_16_GIB)).toThrow("is not guest RAM");
      // The top of the low region, just below the MMIO hole.
      memory.writeU32(MMIO_HOLE_START - 4, 0xcafe_f00d);
      expect(memory.readU32(MMIO_HOLE_START - 4)).toBe(0xcafe_f00d);
    } finally {
      memory.close();
    }
  });

  test("accesses across a window boundary reach the same bytes as accesses inside windows", () => {
    const memory = GuestMemory.allocate(ramRanges(SIXTEEN_GIB));
    try {
      const boundary = HIGH_RAM_START + 2 * WINDOW_BYTES;
      memory.writeU64(boundary - 4, 0xaabb_ccdd_0011_2233n); // straddles two windows
      expect(memory.readU32(boundary - 4)).toBe(0x0011_2233);
      expect(memory.readU32(boundary)).toBe(0xaabb_ccdd);
      expect(memory.readU64(boundary - 4)).toBe(0xaabb_ccdd_0011_2233n);
      const across = memory.slice(boundary - 2, 4);
      expect([...across]).toEqual([0x11, 0x00, 0xdd, 0xcc]);
      across.fill(0x5a); // a live view: writes land in guest RAM
      expect(memory.readU32(boundary - 2)).toBe(0x5a5a_5a5a);
      // A slice longer than one window is still one view of the right bytes.
      const long = memory.slice(HIGH_RAM_START + WINDOW_BYTES - 8, WINDOW_BYTES + 16);
      expect(long.length).toBe(WINDOW_BYTES + 16);
      expect(long[WINDOW_BYTES + 6]).toBe(0x5a);
    } finally {
      memory.close();
    }
  });

  test("attach (what each vCPU worker does) sees the same 16 GiB, top included", () => {
    const memory = GuestMemory.allocate(ramRanges(SIXTEEN_GIB));
    try {
      const attached = GuestMemory.attach(memory.descriptors);
      attached.writeU32(END_OF_16_GIB - 4, 0x1234_5678);
      expect(memory.readU32(END_OF_16_GIB - 4)).toBe(0x1234_5678);
      attached.close(); // unmaps nothing
      expect(memory.readU32(END_OF_16_GIB - 4)).toBe(0x1234_5678);
    } finally {
      memory.close();
    }
  });

  test("the largest size the schema allows maps and is reachable at its top", () => {
    const memory = GuestMemory.allocate(ramRanges(MEMORY_SIZE_MAX));
    try {
      const end = HIGH_RAM_START + MEMORY_SIZE_MAX - MMIO_HOLE_START;
      memory.writeU32(end - 4, 0xfeed_beef);
      expect(memory.readU32(end - 4)).toBe(0xfeed_beef);
    } finally {
      memory.close();
    }
  });
});

describe("a VM with high RAM", () => {
  // A 32-bit guest reaches physical memory above 4 GiB only with paging: high-memory.S turns on long mode
  // (4-level paging, still running 32-bit code) and maps the last 2 MiB of RAM, so this guest really
  // touches the top of the high region, through KVM's memory slot and the vCPU worker's attached views.
  test.each([
    ["16G", SIXTEEN_GIB],
    ["64G", MEMORY_SIZE_MAX],
  ])("of %s boots, and its guest reads and writes the last page of RAM", async (size, bytes) => {
    const end = HIGH_RAM_START + bytes - MMIO_HOLE_START;
    await using vm = await Vm.create(rawGuestConfig("high-memory", { memory: size }));
    vm.memory.writeU32(end - 8, 0x0bad_cafe);
    await vm.boot();
    await waitUntil(
      () => vm.memory.readU32(DONE) === DONE_MAGIC,
      "the guest to touch the top of RAM",
      60_000,
    );
    expect(vm.memory.readU32(SEEN)).toBe(0x0bad_cafe);
    expect(vm.memory.readU32(end - 4)).toBe(~0x0bad_cafe >>> 0);
    expect(vm.state).toBe("Running");
  });
});
