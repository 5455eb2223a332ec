/**
 * The snapshot format's pure parts, without KVM: the chained checksum, the CPU vendor and missing
 * feature checks, a vCPU state's JSON round trip and its one-line refusals, the memory file's layout.
 */
import { describe, expect, test } from "bun:test";
import type { CpuidEntry } from "../../src/kvm/cpuid-table.ts";
import { Checksum, checksum, cpuVendor, missingFeature } from "../../src/snapshot/format.ts";
import { regionFileOffsets } from "../../src/snapshot/memory-file.ts";
import { SnapshotError } from "../../src/snapshot/snapshot-error.ts";
import { type VcpuState, vcpuStateFromJson, vcpuStateToJson } from "../../src/snapshot/vcpu-state.ts";

const entry = (fn: number, index: number, regs: Partial<CpuidEntry>): CpuidEntry => ({
  function: fn,
  index,
  flags: 0,
  eax: 0,
  ebx: 0,
  ecx: 0,
  edx: 0,
  ...regs,
});

describe("checksum", () => {
  test("chains pieces: the same bytes split differently give another sum, the same split the same", () => {
    const a = new TextEncoder().encode("hello ");
    const b = new TextEncoder().encode("world");
    const one = new Checksum();
    one.add(a);
    one.add(b);
    const again = new Checksum();
    again.add(a);
    again.add(b);
    expect(one.hex()).toBe(again.hex());
    expect(one.hex()).toMatch(/^[0-9a-f]{16}$/);
    expect(one.hex()).not.toBe(checksum(new TextEncoder().encode("hello world")));
    expect(checksum(a)).not.toBe(checksum(b));
  });
});

describe("host checks", () => {
  test("cpuVendor reads leaf 0's EBX, EDX, ECX", () => {
    // "GenuineIntel": EBX "Genu", EDX "ineI", ECX "ntel"
    const leaf0 = entry(0, 0, { ebx: 0x756e_6547, edx: 0x4965_6e69, ecx: 0x6c65_746e });
    expect(cpuVendor([leaf0])).toBe("GenuineIntel");
    expect(cpuVendor([])).toBe("unknown");
  });

  test("missingFeature names the first feature bit the guest saw and the host lacks", () => {
    const host = [entry(1, 0, { ecx: 0b1011, edx: 0xffff_ffff }), entry(7, 0, { ebx: 0x0000_00ff })];
    expect(missingFeature([entry(1, 0, { ecx: 0b0011 })], host)).toBeUndefined();
    expect(missingFeature([entry(1, 0, { ecx: 0b0111 })], host)).toBe("CPUID.(EAX=0x1,ECX=0):ECX bit 2");
    expect(missingFeature([entry(7, 0, { ebx: 0x8000_0000 })], host)).toBe(
      "CPUID.(EAX=0x7,ECX=0):EBX bit 31",
    );
  });
});

describe("vCPU state JSON", () => {
  const state: VcpuState = {
    index: 2,
    regs: new Uint8Array([1, 2, 3]),
    sregs: new Uint8Array([4]),
    fpu: new Uint8Array([5]),
    xsave: new Uint8Array(4096).fill(7),
    xcrs: new Uint8Array([8]),
    lapic: new Uint8Array(1024).fill(9),
    debugregs: new Uint8Array([10]),
    events: new Uint8Array([11]),
    mpState: 3,
    tscKhz: 2_000_000,
    msrs: [
      [0x10, 0xffff_ffff_ffff_fff0n],
      [0x6e0, 12345n],
    ],
  };

  test("round-trips every field, MSR values beyond 2^53 included", () => {
    const back = vcpuStateFromJson(JSON.parse(JSON.stringify(vcpuStateToJson(state))), "state.json");
    expect(back).toEqual(state);
  });

  test("a missing or malformed field is one line naming the file, the vCPU and the field", () => {
    const json = vcpuStateToJson(state) as unknown as Record<string, unknown>;
    const without = (k: string) => Object.fromEntries(Object.entries(json).filter(([key]) => key !== k));
    expect(() => vcpuStateFromJson(without("lapic") as never, "state.json")).toThrow(
      new SnapshotError("state.json: vCPU 2: lapic is missing"),
    );
    expect(() => vcpuStateFromJson({ ...json, tsc_khz: "fast" } as never, "state.json")).toThrow(
      "state.json: vCPU 2: tsc_khz is not an integer",
    );
    expect(() => vcpuStateFromJson({ ...json, msrs: 5 } as never, "state.json")).toThrow(
      "state.json: vCPU 2: msrs is not a list",
    );
  });
});

test("the memory file puts regions back to back", () => {
  expect(regionFileOffsets([{ size: 3 << 30 }, { size: 1 << 30 }])).toEqual([0, 3 << 30]);
  expect(regionFileOffsets([])).toEqual([]);
});
