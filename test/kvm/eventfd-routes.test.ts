/**
 * The routes that bypass the VMM thread, on real KVM: KVM_IOEVENTFD (a guest doorbell write becomes an
 * eventfd count inside KVM, with no exit to us), KVM_IRQFD (an eventfd write raises a GSI on the
 * in-kernel irqchip), and KVM_GET_DIRTY_LOG (a guest write marks its page). Guests here cannot take
 * interrupts, so IRQFD is checked on the VMM side, in the irqchip state KVM_GET_IRQCHIP returns.
 */
import { describe, expect, test } from "bun:test";
import { EBUSY } from "../../ffi/errno-names.ts";
import { assembleRawGuest } from "../../src/demo/assemble.ts";
import { KvmError } from "../../src/kvm/kvm-error.ts";
import { ioapicIrr, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, picIrr } from "../../src/kvm/vm-fd.ts";
import { EventFd } from "../../src/sys/eventfd.ts";
import { waitUntil } from "../helpers/guests.ts";
import { TestMachine } from "../helpers/kvm-harness.ts";

const GUESTS = `${import.meta.dir}/../guests`;
const MIB = 1 << 20;
const RAM = 16 * MIB;
const PAGE = 4096;
// Mirrors of test/guests/doorbells.S and dirty-page.S.
const DOORBELL_ANY = 0xd000_0000;
const DOORBELL_MATCH = 0xd000_0010;
const PIO_DOORBELL = 0x520;
const MATCH_VALUE = 7n;
const DONE_PORT = 0x500;
const DIRTY_GPA = 0x8_0000;
/** A legacy ISA line (PIC master and IOAPIC pin) nothing else drives in the harness machine. */
const GSI = 5;

function mmioWrites(exits: ReturnType<TestMachine["runUntilOut"]>) {
  return exits.flatMap((e) => (e.kind === "mmio" && e.write ? [[e.address, e.data] as const] : []));
}

describe("KVM_IOEVENTFD", () => {
  test("registered doorbells count in their eventfds without an exit; datamatch filters; deassign restores the exit", () => {
    const machine = TestMachine.create(RAM);
    const any = EventFd.create();
    const match = EventFd.create();
    const pio = EventFd.create();
    try {
      machine.startRaw(assembleRawGuest(`${GUESTS}/doorbells.S`), RAM);
      const anyRoute = { addr: DOORBELL_ANY, len: 4 } as const;
      const matchRoute = { addr: DOORBELL_MATCH, len: 4, datamatch: MATCH_VALUE } as const;
      machine.vm.registerIoEventFd(any.fd, anyRoute);
      machine.vm.registerIoEventFd(match.fd, matchRoute);
      machine.vm.registerIoEventFd(pio.fd, { addr: PIO_DOORBELL, len: 1, pio: true });

      const round1 = machine.runUntilOut(DONE_PORT);
      // Only the write whose value does not match reached us; the port doorbell did not exit either.
      expect(mmioWrites(round1)).toEqual([[DOORBELL_MATCH, MATCH_VALUE + 1n]]);
      expect(round1.filter((e) => e.kind === "io" && e.port === PIO_DOORBELL)).toEqual([]);
      expect([any.read(), match.read(), pio.read()]).toEqual([1n, 1n, 1n]);

      machine.vm.unregisterIoEventFd(any.fd, anyRoute);
      machine.vm.unregisterIoEventFd(match.fd, matchRoute);
      const round2 = machine.runUntilOut(DONE_PORT);
      expect(mmioWrites(round2)).toEqual([
        [DOORBELL_ANY, 1n],
        [DOORBELL_MATCH, MATCH_VALUE],
      ]);
      expect([any.read(), match.read()]).toEqual([0n, 0n]);
    } finally {
      for (const fd of [any, match, pio]) fd.close();
      machine.close();
    }
  });
});

describe("KVM_IRQFD", () => {
  test("an edge route: a write pulses the GSI, which latches in the PIC's IRR; one route per fd and GSI", async () => {
    const machine = TestMachine.create(RAM);
    const fd = EventFd.create();
    try {
      const irr = () => picIrr(machine.vm.getIrqchip(KVM_IRQCHIP_PIC_MASTER));
      expect(irr() & (1 << GSI)).toBe(0);
      machine.vm.registerIrqFd(fd.fd, GSI);
      fd.write();
      await waitUntil(() => (irr() & (1 << GSI)) !== 0, `PIC IRR bit ${GSI} after the irqfd write`);
      let error: unknown;
      try {
        machine.vm.registerIrqFd(fd.fd, GSI);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(KvmError);
      expect((error as KvmError).errno).toBe(EBUSY);
      machine.vm.unregisterIrqFd(fd.fd, GSI);
      machine.vm.registerIrqFd(fd.fd, GSI); // accepted again once deassigned
      machine.vm.unregisterIrqFd(fd.fd, GSI);
    } finally {
      fd.close();
      machine.close();
    }
  });

  test("a resample (level) route holds the IOAPIC pin: its IRR bit rises after the write", async () => {
    const machine = TestMachine.create(RAM);
    const fd = EventFd.create();
    const resample = EventFd.create();
    try {
      const irr = () => ioapicIrr(machine.vm.getIrqchip(KVM_IRQCHIP_IOAPIC));
      expect(irr() & (1 << GSI)).toBe(0);
      machine.vm.registerIrqFd(fd.fd, GSI, resample.fd);
      fd.write();
      await waitUntil(() => (irr() & (1 << GSI)) !== 0, `IOAPIC IRR bit ${GSI} after the irqfd write`);
      machine.vm.unregisterIrqFd(fd.fd, GSI);
    } finally {
      fd.close();
      resample.close();
      machine.close();
    }
  });
});

describe("KVM_GET_DIRTY_LOG", () => {
  test("a guest write marks its page, and only it among its neighbours; reading the log clears it", () => {
    const machine = TestMachine.create(RAM, { logDirtyPages: true });
    try {
      const slot0 = machine.memory.descriptors[0]!;
      expect(slot0.gpa).toBe(0);
      const page = DIRTY_GPA / PAGE;
      const bit = (log: BigUint64Array, p: number) => (log[p >> 6]! >> BigInt(p & 63)) & 1n;
      machine.startRaw(assembleRawGuest(`${GUESTS}/dirty-page.S`, { DIRTY_GPA }), RAM);
      machine.vm.getDirtyLog(0, slot0.size); // whatever setup did is not the guest's
      machine.runUntilOut(DONE_PORT);
      const log = machine.vm.getDirtyLog(0, slot0.size);
      expect(log.length).toBe(Math.ceil(slot0.size / PAGE / 64));
      expect([bit(log, page - 1), bit(log, page), bit(log, page + 1)]).toEqual([0n, 1n, 0n]);
      expect(machine.memory.readU32(DIRTY_GPA)).toBe(0x5a5a_5a5a);
      expect(bit(machine.vm.getDirtyLog(0, slot0.size), page)).toBe(0n);
    } finally {
      machine.close();
    }
  });

  test("a slot registered without KVM_MEM_LOG_DIRTY_PAGES is refused, naming the ioctl and slot", () => {
    const machine = TestMachine.create(RAM);
    try {
      expect(() => machine.vm.getDirtyLog(0, machine.memory.descriptors[0]!.size)).toThrow(
        /^KVM_GET_DIRTY_LOG \(slot 0\): /,
      );
    } finally {
      machine.close();
    }
  });
});
