/**
 * Device types and the registry (devices/device-type.ts, devices/registry.ts): a dummy device shaped like a
 * virtio-mmio transport (an allocated 0x200-byte MMIO window and GSI, an LNRO0005 DSDT device with
 * Memory32Fixed + Interrupt, a front-end over shared state, a back-end declared for a device worker) plugs
 * in with one registry entry; the allocator refuses overlaps; every platform device saves and restores
 * its state, COM1 with its unread input.
 */
import { describe, expect, test } from "bun:test";
import { GedEvent } from "../../devices/acpi-ged.ts";
import type { AccessSize, BusDevice } from "../../devices/bus.ts";
import { ByteQueue, createByteQueueBuffer } from "../../devices/byte-queue.ts";
import {
  CPU_ENABLED,
  CPU_HOTPLUG_STATUS_OFFSET,
  CpuHotplugState,
} from "../../devices/cpu-hotplug-controller.ts";
import { restoreBuffers, saveBuffers } from "../../devices/device-state.ts";
import { type DeviceContext, type DeviceSpecBase, defineDeviceType } from "../../devices/device-type.ts";
import {
  attachDevices,
  createDevices,
  type DeviceRegistry,
  deviceTypeOf,
  dsdtContent,
  PLATFORM_DEVICES,
} from "../../devices/registry.ts";
import { ResourceAllocator } from "../../devices/resource-allocator.ts";
import { UART_LSR, UART_LSR_DR, UART_RX, UART_SCR } from "../../devices/serial-8250.ts";
import { device, encodeAml, name, string } from "../../src/arch/x86_64/acpi/aml.ts";
import { interrupt, memory32Fixed, resourceTemplate } from "../../src/arch/x86_64/acpi/resource-template.ts";
import {
  COM1_PORT,
  CPU_HOTPLUG_BASE,
  DEVICE_GSI_FIRST,
  DEVICE_MMIO_START,
  GED_BASE,
  I8042_COMMAND_PORT,
  I8042_DATA_PORT,
} from "../../src/arch/x86_64/layout.ts";
import { BunvmmError } from "../../src/errors.ts";
import { acpiTablesFor, platformAllocator } from "../../src/vmm/platform.ts";
import { RecordingIrqLine } from "../helpers/recording-irq-line.ts";

/** What a virtio-mmio transport needs: 0x200 bytes of MMIO, one GSI. */
const TRANSPORT_WINDOW = 0x200;
/** The dummy's one register: a word the front-end reads and writes. */
const SCRATCH = 0;

interface DummySpec extends DeviceSpecBase {
  readonly kind: "dummy-mmio";
  readonly base: number;
  readonly gsi: number;
  readonly state: SharedArrayBuffer;
}

class DummyFrontEnd implements BusDevice {
  private readonly words: Int32Array;
  constructor(state: SharedArrayBuffer) {
    this.words = new Int32Array(state);
  }
  read(offset: number, _size: AccessSize): number {
    return offset === SCRATCH ? Atomics.load(this.words, 0) : 0;
  }
  write(offset: number, _size: AccessSize, value: number): void {
    if (offset === SCRATCH) Atomics.store(this.words, 0, value);
  }
}

let dummies = 0;
const dummyType = defineDeviceType<DummySpec>({
  kind: "dummy-mmio",
  create: (resources) => {
    const name = `dummy${dummies++}`;
    return {
      kind: "dummy-mmio",
      name,
      base: resources.allocateMmio(name, TRANSPORT_WINDOW).base,
      gsi: resources.allocateGsi(name),
      state: new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT),
    };
  },
  attach: (spec, _ctx, buses) =>
    buses.mmio.insert(spec.base, TRANSPORT_WINDOW, new DummyFrontEnd(spec.state), spec.name),
  aml: (spec) => ({
    systemBus: [
      device(`V${spec.name.slice(-3).toUpperCase()}`, [
        name("_HID", string("LNRO0005")),
        name("_UID", 0),
        name(
          "_CRS",
          resourceTemplate([
            memory32Fixed(spec.base, TRANSPORT_WINDOW),
            interrupt(
              { usage: "ResourceConsumer", trigger: "Edge", polarity: "ActiveHigh", sharing: "Exclusive" },
              [spec.gsi],
            ),
          ]),
        ),
      ]),
    ],
  }),
  backend: (spec) => ({ entry: "dummy-backend", init: { state: spec.state, gsi: spec.gsi } }),
  save: (spec) => saveBuffers(1, [spec.state]),
  restore: (spec, state) => restoreBuffers(spec.name, 1, state, [spec.state]),
});

function platformEnv(maxVcpus = 4) {
  return {
    maxVcpus,
    serial: { tx: new ByteQueue(createByteQueueBuffer()), rx: new ByteQueue(createByteQueueBuffer(1 << 12)) },
  };
}

function workerContext(): DeviceContext & { requests: string[] } {
  const requests: string[] = [];
  return {
    requests,
    memory: { contains: () => false },
    irqLine: () => new RecordingIrqLine(),
    request: (r) => void requests.push(r),
    eject: { readCmd: () => 0, tryKill: () => "already" },
  };
}

function indexOfBytes(haystack: Uint8Array, needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const le32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

describe("a device added with one registry entry", () => {
  const registry: DeviceRegistry = [...PLATFORM_DEVICES, dummyType, dummyType];
  const specs = createDevices(registry, platformAllocator(), platformEnv());
  const [first, second] = specs.filter((s): s is DummySpec => s.kind === "dummy-mmio");

  test("gets distinct allocated MMIO windows and GSIs", () => {
    expect(first!.base).toBe(DEVICE_MMIO_START);
    expect(second!.base).toBe(DEVICE_MMIO_START + TRANSPORT_WINDOW);
    expect([first!.gsi, second!.gsi]).toEqual([DEVICE_GSI_FIRST, DEVICE_GSI_FIRST + 1]);
  });

  test("specs survive structured cloning, and a worker's bus reaches the front-end over shared state", () => {
    const cloned = structuredClone(specs);
    const buses = attachDevices(cloned, workerContext(), registry);
    expect(buses.mmio.write(first!.base + SCRATCH, 4, 0x1234)).toBe(true);
    // A second worker's bus sees the same register: the state is shared, not copied.
    const other = attachDevices(structuredClone(specs), workerContext(), registry);
    expect(other.mmio.read(first!.base + SCRATCH, 4)).toBe(0x1234);
    expect(buses.mmio.read(second!.base + SCRATCH, 4)).toBe(0);
    expect(buses.pio.read(COM1_PORT + UART_LSR, 1)).toBeDefined();
  });

  test("contributes an LNRO0005 device with Memory32Fixed and Interrupt to the DSDT", () => {
    const content = dsdtContent(specs, { maxVcpus: 4 }, registry);
    const platformOnly = dsdtContent(
      specs.filter((s) => s.kind !== "dummy-mmio"),
      { maxVcpus: 4 },
    );
    expect(content.systemBus.length).toBe(platformOnly.systemBus.length + 2);
    const aml = encodeAml(content.systemBus);
    expect(indexOfBytes(aml, [...new TextEncoder().encode("LNRO0005")])).toBeGreaterThan(0);
    // Memory32Fixed: tag 0x86, length 9, read-write, base, length (ACPI 6.5, section 6.4.3.4).
    expect(
      indexOfBytes(aml, [0x86, 0x09, 0x00, 0x01, ...le32(first!.base), ...le32(TRANSPORT_WINDOW)]),
    ).toBeGreaterThan(0);
    // Extended Interrupt: tag 0x89, then one interrupt number: the allocated GSI.
    expect(indexOfBytes(aml, [0x01, ...le32(second!.gsi)])).toBeGreaterThan(0);
  });

  test("the tables build with the dummy in the DSDT", () => {
    const tables = acpiTablesFor(specs, { bootVcpus: 1, maxVcpus: 4 }, { registry });
    const dsdt = tables.tables.get("DSDT")!;
    expect(indexOfBytes(dsdt, [...new TextEncoder().encode("LNRO0005")])).toBeGreaterThan(0);
  });

  test("declares a back-end for a device worker", () => {
    const backend = deviceTypeOf("dummy-mmio", registry).backend?.(first!);
    expect(backend?.entry).toBe("dummy-backend");
    expect(structuredClone(backend?.init)).toEqual({ state: first!.state, gsi: first!.gsi });
  });

  test("an unknown kind names itself", () => {
    expect(() => attachDevices([{ kind: "nope", name: "x" }], workerContext())).toThrow(
      'no device type "nope"',
    );
  });
});

describe("ResourceAllocator", () => {
  const pools = { mmioStart: 0x1000, mmioEnd: 0x2000, gsiFirst: 16, gsiLast: 17 };

  test("refuses an overlapping claim, naming both owners", () => {
    const a = new ResourceAllocator(pools);
    a.fixedPio("COM1", 0x3f8, 8);
    expect(() => a.fixedPio("COM1-again", 0x3ff, 1)).toThrow(
      /COM1-again: port \[0x3ff, 0x400\) overlaps COM1's/,
    );
    a.fixedGsi("uart", 4);
    expect(() => a.fixedGsi("other", 4)).toThrow("other: GSI 4 is already uart's");
  });

  test("allocates around fixed claims and says when a pool is empty", () => {
    const a = new ResourceAllocator(pools);
    a.fixedMmio("fixed", 0x1000, 0x200);
    expect(a.allocateMmio("t0", 0x200).base).toBe(0x1200);
    expect(a.allocateMmio("t1", 0x800).base).toBe(0x1800);
    expect(() => a.allocateMmio("t2", 0x800)).toThrow(BunvmmError);
    expect(a.allocateGsi("t0")).toBe(16);
    a.fixedGsi("fixed", 17);
    expect(() => a.allocateGsi("t1")).toThrow("t1: no GSI left in 16..17");
  });

  test("the platform's own claims do not collide", () => {
    expect(() => createDevices(PLATFORM_DEVICES, platformAllocator(), platformEnv())).not.toThrow();
  });
});

describe("save and restore", () => {
  function machine() {
    const env = platformEnv(4);
    const specs = createDevices(PLATFORM_DEVICES, platformAllocator(), env);
    const ctx = workerContext();
    return { env, specs, buses: attachDevices(specs, ctx), ctx };
  }

  test("every platform device's state comes back, COM1 with the input the guest has not read", () => {
    const a = machine();
    a.buses.pio.write(COM1_PORT + UART_SCR, 1, 0x5a);
    a.env.serial.rx.push(0x41);
    a.env.serial.rx.push(0x42);
    a.buses.pio.write(I8042_COMMAND_PORT, 1, 0x60);
    a.buses.pio.write(I8042_DATA_PORT, 1, 0x12);
    const hotplugSpec = a.specs.find((s) => s.kind === "cpu-hotplug")!;
    new CpuHotplugState(hotplugSpec.state).setStatus(2, CPU_ENABLED);
    a.buses.mmio.write(CPU_HOTPLUG_BASE, 4, 2);
    const gedSpec = a.specs.find((s) => s.kind === "acpi-ged")!;
    Atomics.or(new Int32Array(gedSpec.state), 0, GedEvent.PowerButton);

    const saved = a.specs.map((s) => ({ kind: s.kind, state: deviceTypeOf(s.kind).save(s) }));
    expect(saved.map((s) => s.state.version)).toEqual([1, 1, 1, 1, 1]);

    const b = machine();
    for (const [i, s] of b.specs.entries()) deviceTypeOf(s.kind).restore(s, saved[i]!.state);
    expect(b.buses.pio.read(COM1_PORT + UART_SCR, 1)).toBe(0x5a);
    expect(b.buses.pio.read(COM1_PORT + UART_LSR, 1)! & UART_LSR_DR).toBe(UART_LSR_DR);
    expect(b.buses.pio.read(COM1_PORT + UART_RX, 1)).toBe(0x41);
    expect(b.buses.pio.read(COM1_PORT + UART_RX, 1)).toBe(0x42);
    b.buses.pio.write(I8042_COMMAND_PORT, 1, 0x20);
    expect(b.buses.pio.read(I8042_DATA_PORT, 1)).toBe(0x12);
    expect(b.buses.mmio.read(CPU_HOTPLUG_BASE, 4)).toBe(2);
    expect(b.buses.mmio.read(CPU_HOTPLUG_BASE + CPU_HOTPLUG_STATUS_OFFSET, 1)! & CPU_ENABLED).toBe(
      CPU_ENABLED,
    );
    expect(b.buses.mmio.read(GED_BASE, 4)).toBe(GedEvent.PowerButton);
  });

  test("a state of another version or size is refused, naming the device", () => {
    const { specs } = machine();
    const com1 = specs[0]!;
    const type = deviceTypeOf(com1.kind);
    const good = type.save(com1);
    expect(() => type.restore(com1, { ...good, version: 99 })).toThrow(
      "cannot restore device COM1: saved state version 99, this build reads version 1",
    );
    expect(() => type.restore(com1, { version: 1, bytes: good.bytes.subarray(1) })).toThrow(
      /cannot restore device COM1: saved state is \d+ bytes, expected \d+/,
    );
  });
});
