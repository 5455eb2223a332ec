/**
 * The one exit decoder (src/kvm/kvm-run.ts) over a kvm_run area written by hand at the offsets
 * <linux/kvm.h> gives (ffi/kvm-structs.ts), and the crash report's phrase for each fatal exit.
 */

import { ptr } from "bun:ffi";
import { describe, expect, test } from "bun:test";
import {
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_MMIO,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_SYSTEM_EVENT,
  KVM_INTERNAL_ERROR_EMULATION,
  KVM_RUN_LAYOUT,
  KVM_SYSTEM_EVENT_RESET,
} from "../../ffi/kvm-structs.ts";
import { KvmRun } from "../../src/kvm/kvm-run.ts";
import { describeFatalExit } from "../../src/vcpu/crash-report.ts";

const F = KVM_RUN_LAYOUT.fields;
/** Any exit reason KVM has and we do not handle (KVM_EXIT_X86_RDMSR). */
const KVM_EXIT_X86_RDMSR = 29;
/** VMX "invalid guest state" entry failure. */
const VMX_INVALID_GUEST_STATE = 0x8000_0021n;

const bytes = new Uint8Array(KVM_RUN_LAYOUT.size);
const view = new DataView(bytes.buffer);
const run = new KvmRun(ptr(bytes), bytes.byteLength);

function reason(r: number): void {
  bytes.fill(0);
  view.setUint32(F.exit_reason.offset, r, true);
}

describe("KvmRun.exit()", () => {
  test("port I/O: direction, port, size, count and where the data is; one record, refilled", () => {
    reason(KVM_EXIT_IO);
    bytes[F["io.direction"].offset] = KVM_EXIT_IO_OUT;
    bytes[F["io.size"].offset] = 2;
    view.setUint16(F["io.port"].offset, 0x3f8, true);
    view.setUint32(F["io.count"].offset, 3, true);
    view.setBigUint64(F["io.data_offset"].offset, 4096n, true);
    const first = run.exit();
    expect(first).toEqual({ kind: "io", direction: "out", port: 0x3f8, size: 2, count: 3, dataOffset: 4096 });
    bytes[F["io.direction"].offset] = 0;
    expect(run.exit()).toBe(first);
    expect(first).toMatchObject({ direction: "in" });
  });

  test("MMIO: a guest-physical address above 4 GiB, length 8, and the data bytes as a view", () => {
    reason(KVM_EXIT_MMIO);
    view.setBigUint64(F["mmio.phys_addr"].offset, 0x1_2345_6000n, true);
    view.setUint32(F["mmio.len"].offset, 8, true);
    bytes[F["mmio.is_write"].offset] = 1;
    view.setBigUint64(F["mmio.data"].offset, 0x0102_0304_0506_0708n, true);
    const exit = run.exit();
    expect(exit).toMatchObject({ kind: "mmio", gpa: 0x1_2345_6000, len: 8, isWrite: true });
    if (exit.kind !== "mmio") throw new Error("not mmio");
    expect([...exit.data]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    expect(run.mmioValue64()).toBe(0x0102_0304_0506_0708n);
    run.setMmioValue64(-1n);
    expect(run.mmioValue(4)).toBe(0xffff_ffff);
  });

  test.each([
    [KVM_EXIT_HLT, { kind: "hlt" }],
    [KVM_EXIT_INTR, { kind: "intr" }],
    [KVM_EXIT_SHUTDOWN, { kind: "shutdown" }],
  ] as const)("exit %i without data", (r, expected) => {
    reason(r);
    expect(run.exit()).toEqual(expected);
  });

  test("fail_entry: the hardware reason and the host CPU", () => {
    reason(KVM_EXIT_FAIL_ENTRY);
    view.setBigUint64(F["fail_entry.hardware_entry_failure_reason"].offset, VMX_INVALID_GUEST_STATE, true);
    view.setUint32(F["fail_entry.cpu"].offset, 3, true);
    const exit = run.exit();
    expect(exit).toEqual({ kind: "fail_entry", hardwareReason: VMX_INVALID_GUEST_STATE, cpu: 3 });
    expect(describeFatalExit(exit)).toBe(
      "KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason 0x80000021, host CPU 3)",
    );
  });

  test("internal_error: suberror and its data words (ndata is clipped to the array)", () => {
    reason(KVM_EXIT_INTERNAL_ERROR);
    view.setUint32(F["internal.suberror"].offset, KVM_INTERNAL_ERROR_EMULATION, true);
    view.setUint32(F["internal.ndata"].offset, 2, true);
    view.setBigUint64(F["internal.data"].offset, 0xd9n, true);
    view.setBigUint64(F["internal.data"].offset + 8, 0xeen, true);
    const exit = run.exit();
    expect(exit).toEqual({
      kind: "internal_error",
      suberror: KVM_INTERNAL_ERROR_EMULATION,
      data: [0xd9n, 0xeen],
    });
    expect(describeFatalExit(exit)).toBe(
      "KVM cannot emulate the guest's instruction (KVM_EXIT_INTERNAL_ERROR, emulation failure, data 0xd9 0xee)",
    );
    view.setUint32(F["internal.ndata"].offset, 1000, true);
    const clipped = run.exit();
    expect(clipped.kind === "internal_error" && clipped.data.length).toBe(F["internal.data"].size / 8);
  });

  test("system_event: its type", () => {
    reason(KVM_EXIT_SYSTEM_EVENT);
    view.setUint32(F["system_event.type"].offset, KVM_SYSTEM_EVENT_RESET, true);
    expect(run.exit()).toEqual({ kind: "system_event", type: KVM_SYSTEM_EVENT_RESET, data: [] });
  });

  test("anything else is unknown, with its number and name", () => {
    reason(KVM_EXIT_X86_RDMSR);
    const exit = run.exit();
    expect(exit).toEqual({
      kind: "unknown",
      reason: KVM_EXIT_X86_RDMSR,
      name: "reason 29",
      hardwareReason: 0n,
    });
    expect(describeFatalExit(exit)).toBe("unexpected exit reason 29 (hardware exit reason 0x0)");
  });

  test("immediate_exit is the kick's byte", () => {
    run.immediateExit = 1;
    expect(bytes[F.immediate_exit.offset]).toBe(1);
    run.immediateExit = 0;
    expect(run.immediateExit).toBe(0);
  });
});
