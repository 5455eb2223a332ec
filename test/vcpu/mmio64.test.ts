/**
 * 8-byte MMIO through the real run loop on real KVM: a 64-bit guest (test/guests/mmio64.S) does `movq`
 * to and from device registers, and the VcpuRunner (run here on the test's thread, no worker) hands
 * the access to the device whole, or as two 4-byte halves to a device without read64/write64, and
 * answers reads with all 64 bits.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Bus, type BusDevice, type WordSize } from "../../devices/bus.ts";
import { RAW_LOAD_ADDRESS } from "../../src/arch/x86_64/layout.ts";
import { assembleRawGuest } from "../../src/demo/assemble.ts";
import { ControlBlock, KILL } from "../../src/vcpu/control-block.ts";
import { KickReceiver } from "../../src/vcpu/kick.ts";
import { type VcpuOutcome, VcpuRunner } from "../../src/vcpu/run-loop.ts";
import { TestMachine } from "../helpers/kvm-harness.ts";

const GUEST = `${import.meta.dir}/../guests/mmio64.S`;
const MIB = 1 << 20;
const RAM = 16 * MIB;
// Mirrors of the guest's constants (test/guests/mmio64.S).
const DEVICE64 = 0xd000_0000;
const DEVICE32 = 0xd000_1000;
const RESULTS = 0x9000;
const DONE_PORT = 0x500;
const WRITE_VALUE = 0x1122_3344_5566_7788n;
/** What the 64-bit device answers to an 8-byte read: both halves distinct and with the top bit set. */
const READ_VALUE = 0xfedc_ba98_7654_3210n;
/** What the 64-bit device answers to a narrow read. */
const NARROW_VALUE = 0xcafe_f00d;
/** The 32-bit device answers offset + this, so the two halves differ. */
const HALF_BASE = 0xa000_0000;
const DEVICE_SIZE = 0x1000;

type Access = readonly [op: string, offset: number, size: number, value: number | bigint];

class Device64 implements BusDevice {
  readonly log: Access[] = [];
  read(offset: number, size: WordSize): number {
    this.log.push(["read", offset, size, NARROW_VALUE]);
    return NARROW_VALUE;
  }
  write(offset: number, size: WordSize, value: number): void {
    this.log.push(["write", offset, size, value]);
  }
  read64(offset: number): bigint {
    this.log.push(["read64", offset, 8, READ_VALUE]);
    return READ_VALUE;
  }
  write64(offset: number, value: bigint): void {
    this.log.push(["write64", offset, 8, value]);
  }
}

class Device32 implements BusDevice {
  readonly log: Access[] = [];
  read(offset: number, size: WordSize): number {
    this.log.push(["read", offset, size, HALF_BASE + offset]);
    return HALF_BASE + offset;
  }
  write(offset: number, size: WordSize, value: number): void {
    this.log.push(["write", offset, size, value]);
  }
}

let machine: TestMachine;
let outcome: VcpuOutcome;
let control: ControlBlock;
const device64 = new Device64();
const device32 = new Device32();

beforeAll(() => {
  machine = TestMachine.create(RAM);
  machine.startRaw(assembleRawGuest(GUEST), RAM);
  control = new ControlBlock();
  const pio = new Bus("pio");
  const mmio = new Bus("mmio");
  mmio.insert(DEVICE64, DEVICE_SIZE, device64, "device64");
  mmio.insert(DEVICE32, DEVICE_SIZE, device32, "device32");
  // The guest's last act: KILL, so the loop ends at its next checkpoint.
  pio.insert(DONE_PORT, 1, { read: () => 0, write: () => control.updateCmd((c) => c | KILL) }, "done");
  const runner = new VcpuRunner(
    0,
    machine.vcpu,
    control,
    { pio, mmio },
    new KickReceiver(machine.vcpu),
    machine.memory,
    () => {},
  );
  outcome = runner.run();
});
afterAll(() => machine.close());

describe("8-byte MMIO through the run loop", () => {
  test("the guest ran to its end (the done port), it did not crash", () => {
    expect(outcome).toEqual({ kind: "killed" });
    expect(machine.vcpu.getRegs().rip).toBeGreaterThan(BigInt(RAW_LOAD_ADDRESS));
  });

  test("a device with read64/write64 gets the 8-byte write and read whole; a 4-byte read stays narrow", () => {
    expect(device64.log).toEqual([
      ["write64", 0, 8, WRITE_VALUE],
      ["read64", 0, 8, READ_VALUE],
      ["read", 8, 4, NARROW_VALUE],
    ]);
    expect(machine.memory.readU64(RESULTS)).toBe(READ_VALUE);
    expect(machine.memory.readU32(RESULTS + 24)).toBe(NARROW_VALUE);
  });

  test("a device without them sees two 4-byte accesses, low half first; the read is reassembled", () => {
    expect(device32.log).toEqual([
      ["write", 0, 4, Number(WRITE_VALUE & 0xffff_ffffn)],
      ["write", 4, 4, Number(WRITE_VALUE >> 32n)],
      ["read", 0, 4, HALF_BASE],
      ["read", 4, 4, HALF_BASE + 4],
    ]);
    expect(machine.memory.readU64(RESULTS + 8)).toBe((BigInt(HALF_BASE + 4) << 32n) | BigInt(HALF_BASE));
  });

  test("an unowned 8-byte read floats all 64 bits high and is counted", () => {
    expect(machine.memory.readU64(RESULTS + 16)).toBe(0xffff_ffff_ffff_ffffn);
    const c = control.counters();
    expect(c.mmio_exits).toBe(6);
    expect(c.unowned_mmio).toBe(1);
    expect(c.io_exits).toBe(1);
  });
});
