import { describe, expect, test } from "bun:test";
import { CPU_HOTPLUG_FIELDS } from "../../../../devices/cpu-hotplug-controller.ts";
import { AcpiError } from "../../../../src/arch/x86_64/acpi/acpi-error.ts";
import { encodeAml, FieldAccess, FieldUpdate, field } from "../../../../src/arch/x86_64/acpi/aml.ts";
import { registerFields } from "../../../../src/arch/x86_64/acpi/register-fields.ts";
import { toHex } from "../../../helpers/acpica.ts";

const DWORD = { access: FieldAccess.DWord, update: FieldUpdate.Preserve } as const;
const BYTE = { access: FieldAccess.Byte, update: FieldUpdate.WriteAsZeros } as const;

describe("registerFields()", () => {
  test("splits the hotplug table into a DWord CSEL field and a Byte status field at offset 4", () => {
    const actual = registerFields("PRST", CPU_HOTPLUG_FIELDS, [
      { offset: 0, flags: DWORD },
      { offset: 4, flags: BYTE },
    ]);
    const expected = [
      field("PRST", DWORD, [["CSEL", 32]]),
      field("PRST", BYTE, [
        [null, 32],
        ["CPEN", 1],
        ["CINS", 1],
        ["CRMV", 1],
        ["CEJ0", 1],
        [null, 4],
      ]),
    ];
    expect(toHex(encodeAml(actual))).toBe(toHex(encodeAml(expected)));
  });

  test("throws when a named unit would cross a register boundary", () => {
    expect(() => registerFields("R", [["WIDE", 16]], [{ offset: 0, flags: BYTE }])).toThrow(AcpiError);
  });

  test("throws when a named unit is in no register, or in two", () => {
    expect(() =>
      registerFields(
        "R",
        [
          ["CSEL", 32],
          ["STAT", 8],
        ],
        [{ offset: 0, flags: DWORD }],
      ),
    ).toThrow("exactly one register");
    expect(() =>
      registerFields(
        "R",
        [["STAT", 8]],
        [
          { offset: 0, flags: BYTE },
          { offset: 0, flags: BYTE },
        ],
      ),
    ).toThrow("exactly one register");
  });

  test("throws for AnyAcc, whose width the OS would choose", () => {
    expect(() =>
      registerFields(
        "R",
        [["STAT", 8]],
        [{ offset: 0, flags: { access: FieldAccess.Any, update: FieldUpdate.Preserve } }],
      ),
    ).toThrow("needs a fixed access width");
  });
});
