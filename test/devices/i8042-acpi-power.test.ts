import { describe, expect, test } from "bun:test";
import {
  ACPI_RESET,
  ACPI_RESET_VALUE,
  ACPI_S5_SLEEP_VALUE,
  ACPI_SLEEP_CONTROL,
  AcpiPower,
} from "../../devices/acpi-power.ts";
import { createI8042State, I8042, I8042_COMMAND, I8042_DATA } from "../../devices/i8042.ts";
import type { VmRequest } from "../../devices/vm-request.ts";

function recorder() {
  const requests: VmRequest[] = [];
  return { requests, sink: (r: VmRequest) => void requests.push(r) };
}

describe("I8042", () => {
  test("command 0xfe posts a reset request and returns", () => {
    const { requests, sink } = recorder();
    const dev = new I8042(createI8042State(), sink);
    dev.write(I8042_COMMAND, 1, 0xfe);
    expect(requests).toEqual(["reset"]);
    expect(dev.resets).toBe(1);
  });

  test("self-test answers 0x55 through the output buffer; the command byte reads back", () => {
    const dev = new I8042(createI8042State(), recorder().sink);
    expect(dev.read(I8042_COMMAND, 1) & 1).toBe(0);
    dev.write(I8042_COMMAND, 1, 0xaa);
    expect(dev.read(I8042_COMMAND, 1) & 1).toBe(1);
    expect(dev.read(I8042_DATA, 1)).toBe(0x55);
    dev.write(I8042_COMMAND, 1, 0x60);
    dev.write(I8042_DATA, 1, 0x12);
    dev.write(I8042_COMMAND, 1, 0x20);
    expect(dev.read(I8042_DATA, 1)).toBe(0x12);
  });
});

describe("AcpiPower", () => {
  test.each([
    ["S5 sleep value powers off", ACPI_SLEEP_CONTROL, ACPI_S5_SLEEP_VALUE, ["poweroff"]],
    ["sleep type without SLP_EN does nothing", ACPI_SLEEP_CONTROL, ACPI_S5_SLEEP_VALUE & ~0x20, []],
    ["S3 is not supported and ignored", ACPI_SLEEP_CONTROL, 0x20 | (3 << 2), []],
    ["the reset value resets", ACPI_RESET, ACPI_RESET_VALUE, ["reset"]],
    ["another value at the reset register is ignored", ACPI_RESET, 0x06, []],
  ])("%s", (_name, offset, value, expected) => {
    const { requests, sink } = recorder();
    new AcpiPower(sink).write(offset, 1, value);
    expect(requests).toEqual(expected as VmRequest[]);
  });

  test("wrong widths are ignored and counted", () => {
    const { requests, sink } = recorder();
    const dev = new AcpiPower(sink);
    dev.write(ACPI_SLEEP_CONTROL, 2, ACPI_S5_SLEEP_VALUE);
    expect(requests).toEqual([]);
    expect(dev.ignoredAccesses).toBe(1);
  });
});
