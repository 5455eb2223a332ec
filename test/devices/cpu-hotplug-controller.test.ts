import { describe, expect, test } from "bun:test";
import {
  AcpiGed,
  createGedState,
  GED_NOTIFICATION_OFFSET,
  GedEvent,
  GedState,
} from "../../devices/acpi-ged.ts";
import {
  CPU_EJECT,
  CPU_ENABLED,
  CPU_HOTPLUG_FIELDS,
  CPU_HOTPLUG_SIZE,
  CPU_INSERTING,
  CPU_REMOVING,
  CpuHotplugController,
  CpuHotplugState,
  CPU_HOTPLUG_CSEL_OFFSET as CSEL,
  createCpuHotplugState,
  type EjectTarget,
  CPU_HOTPLUG_STATUS_OFFSET as STATUS,
} from "../../devices/cpu-hotplug-controller.ts";
import { RecordingIrqLine } from "../helpers/recording-irq-line.ts";

const KILL = 2;

/** Control words in memory: KILL is a bit, as in src/vcpu/control-block.ts; `ejected` lists the kills. */
class RecordingEjectTarget implements EjectTarget {
  readonly cmd: number[];
  readonly ejected: number[] = [];
  /** Called between readCmd and tryKill, to change CMD under the device's feet. */
  interleave: ((cpu: number) => void) | undefined;
  constructor(max: number) {
    this.cmd = Array(max).fill(0);
  }
  readCmd(cpu: number): number {
    const seen = this.cmd[cpu]!;
    this.interleave?.(cpu);
    return seen;
  }
  tryKill(cpu: number, seen: number): "killed" | "already" | "changed" {
    if (seen & KILL) return "already";
    if (this.cmd[cpu] !== seen) return "changed";
    this.cmd[cpu] = seen | KILL;
    this.ejected.push(cpu);
    return "killed";
  }
}

function controller(max = 4) {
  const buffer = createCpuHotplugState(max);
  const target = new RecordingEjectTarget(max);
  return {
    dev: new CpuHotplugController(buffer, target),
    state: new CpuHotplugState(buffer),
    ejected: target.ejected,
    target,
  };
}

describe("CpuHotplugController", () => {
  test("the field table spans the 12-byte block and puts the status bits at byte 4", () => {
    const bits = CPU_HOTPLUG_FIELDS.reduce((n, [, b]) => n + b, 0);
    expect(bits).toBe((STATUS + 1) * 8);
    expect(CPU_HOTPLUG_SIZE).toBe(12);
    expect([CPU_ENABLED, CPU_INSERTING, CPU_REMOVING, CPU_EJECT]).toEqual([1, 2, 4, 8]);
  });

  test("CSEL selects; status reads the selected CPU's bits; out-of-range selections read 0", () => {
    const { dev, state } = controller();
    state.setStatus(2, CPU_ENABLED | CPU_INSERTING);
    dev.write(CSEL, 4, 2);
    expect(dev.read(CSEL, 4)).toBe(2);
    expect(dev.read(STATUS, 1)).toBe(CPU_ENABLED | CPU_INSERTING);
    dev.write(CSEL, 4, 0xffff_ffff);
    expect(dev.read(CSEL, 4)).toBe(0xffff_ffff);
    expect(dev.read(STATUS, 1)).toBe(0);
    dev.write(STATUS, 1, 0xff); // to a CPU that does not exist: ignored
    expect(state.status(2)).toBe(CPU_ENABLED | CPU_INSERTING);
  });

  test("the guest acks inserting and removing; it cannot set or clear enabled", () => {
    const { dev, state } = controller();
    state.setStatus(1, CPU_ENABLED | CPU_INSERTING | CPU_REMOVING);
    dev.write(CSEL, 4, 1);
    dev.write(STATUS, 1, CPU_INSERTING);
    expect(state.status(1)).toBe(CPU_ENABLED | CPU_REMOVING);
    dev.write(STATUS, 1, CPU_REMOVING | CPU_ENABLED);
    expect(state.status(1)).toBe(CPU_ENABLED);
  });

  test.each([
    ["a CPU the VMM marked for removal is ejected", 2, true, [2]],
    ["an unmarked CPU is not ejected (the refusal is counted)", 2, false, []],
    ["CPU 0 is never ejected, even when marked", 0, true, []],
  ])("eject: %s", (_what, cpu, mark, expected) => {
    const { dev, state, ejected } = controller();
    state.setStatus(cpu, CPU_ENABLED | CPU_REMOVING);
    if (mark) state.setPendingRemoval(cpu, true);
    dev.write(CSEL, 4, cpu);
    dev.write(STATUS, 1, CPU_REMOVING); // CSCN clears REMOVING before _EJ0, as the DSDT does
    dev.write(STATUS, 1, CPU_EJECT);
    expect(ejected).toEqual(expected);
    expect(state.refusedEjects).toBe(expected.length === 0 ? 1 : 0);
  });

  test("a repeated eject of the same CPU kills it once (coalesced)", () => {
    const { dev, state, ejected } = controller();
    state.setPendingRemoval(3, true);
    dev.write(CSEL, 4, 3);
    for (let i = 0; i < 5; i++) dev.write(STATUS, 1, CPU_EJECT);
    expect(ejected).toEqual([3]);
  });

  test("an eject whose CMD changed under it reads again and still kills once", () => {
    const { dev, state, ejected, target } = controller();
    state.setPendingRemoval(2, true);
    let moves = 2;
    target.interleave = (cpu) => {
      if (moves-- > 0) target.cmd[cpu] = target.cmd[cpu]! + 8; // a pause epoch lands meanwhile
    };
    dev.write(CSEL, 4, 2);
    dev.write(STATUS, 1, CPU_EJECT);
    expect(ejected).toEqual([2]);
  });

  test("an eject that finds the mark gone after reading CMD kills nothing (the eject ABA)", () => {
    const { dev, state, ejected, target } = controller();
    state.setPendingRemoval(1, true);
    target.interleave = () => state.setPendingRemoval(1, false); // reaped and re-added meanwhile
    dev.write(CSEL, 4, 1);
    dev.write(STATUS, 1, CPU_EJECT);
    expect(ejected).toEqual([]);
    expect(state.refusedEjects).toBe(1);
  });

  test.each([
    [CSEL, 1],
    [CSEL, 2],
    [CSEL, 8],
    [STATUS, 2],
    [STATUS, 4],
  ] as const)("an access at offset %i of width %i is ignored and counted", (offset, size) => {
    const { dev, state } = controller();
    state.setStatus(0, CPU_ENABLED);
    dev.write(offset, size, 3);
    expect(dev.read(offset, size)).toBe(0);
    expect(state.selected).toBe(0);
    expect(state.ignoredAccesses).toBe(2);
  });

  test("random values at random offsets and widths: never throws, never ejects an unmarked CPU", () => {
    const { dev, state, ejected } = controller(8);
    state.setPendingRemoval(5, true);
    let seed = 12345;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0);
    for (let i = 0; i < 100_000; i++) {
      const size = ([1, 2, 4, 8] as const)[rnd() % 4]!;
      const offset = rnd() % CPU_HOTPLUG_SIZE;
      if (rnd() % 2) dev.write(offset, size, rnd());
      else dev.read(offset, size);
    }
    expect(ejected.every((cpu) => cpu === 5)).toBe(true);
  });
});

describe("AcpiGed", () => {
  test("raise() sets the event and sends an edge; a read returns the events and clears them", () => {
    const buffer = createGedState();
    const irq = new RecordingIrqLine();
    const ged = new GedState(buffer, irq);
    const dev = new AcpiGed(buffer);
    ged.raise(GedEvent.CpuHotplug);
    ged.raise(GedEvent.PowerButton);
    expect(irq.rises).toBe(2);
    expect(irq.level).toBe(0);
    expect(dev.read(GED_NOTIFICATION_OFFSET, 4)).toBe(GedEvent.CpuHotplug | GedEvent.PowerButton);
    expect(dev.read(GED_NOTIFICATION_OFFSET, 4)).toBe(0);
  });

  test("other widths and all writes are ignored and counted", () => {
    const buffer = createGedState();
    new GedState(buffer, new RecordingIrqLine()).raise(GedEvent.CpuHotplug);
    const dev = new AcpiGed(buffer);
    expect(dev.read(GED_NOTIFICATION_OFFSET, 1)).toBe(0);
    dev.write(GED_NOTIFICATION_OFFSET, 4, 0);
    expect(dev.ignoredAccesses).toBe(2);
    expect(dev.read(GED_NOTIFICATION_OFFSET, 4)).toBe(GedEvent.CpuHotplug);
  });
});
