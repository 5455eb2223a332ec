/**
 * Turns a device's register table (`[name | null, bits][]`, as devices/ exports it) into AML Fields, one
 * per register, each with the access width the device accepts. A device that honours only exact widths
 * (4 bytes at CSEL, 1 byte at the status byte) needs one Field per width: with a single AnyAcc Field the
 * OS would pick its own widths.
 * @module
 */
import { AcpiError } from "./acpi-error.ts";
import { type Aml, FieldAccess, type FieldFlags, type FieldUnit, field } from "./aml.ts";

const BITS_PER_BYTE = 8;

/** Bytes per access of each Field access type that has a fixed width. */
const ACCESS_BYTES: Partial<Record<FieldAccess, number>> = {
  [FieldAccess.Byte]: 1,
  [FieldAccess.Word]: 2,
  [FieldAccess.DWord]: 4,
  [FieldAccess.QWord]: 8,
};

/** One register of a block: its byte offset and how the OS must access it. */
export interface RegisterAccess {
  readonly offset: number;
  readonly flags: FieldFlags;
}

/**
 * One Field per register over `region`: the units of `table` inside [offset, offset + access width),
 * led by reserved space up to the register. Throws AcpiError if a named unit crosses a register boundary
 * or does not lie in exactly one register (the guest could not reach it at the width the device accepts).
 */
export function registerFields(
  region: string,
  table: readonly FieldUnit[],
  registers: readonly RegisterAccess[],
): Aml[] {
  const placed = new Map<string, number>();
  const fields = registers.map(({ offset, flags }) => {
    const bytes = ACCESS_BYTES[flags.access];
    if (bytes === undefined)
      throw new AcpiError(`Field over ${region}`, flags.access, "needs a fixed access width");
    const start = offset * BITS_PER_BYTE;
    const end = start + bytes * BITS_PER_BYTE;
    const units: FieldUnit[] = start > 0 ? [[null, start]] : [];
    let bit = 0;
    for (const [unit, bits] of table) {
      const unitEnd = bit + bits;
      const overlap = Math.min(unitEnd, end) - Math.max(bit, start);
      if (overlap > 0 && unit === null) units.push([null, overlap]);
      else if (overlap > 0 && unit !== null) {
        if (overlap !== bits)
          throw new AcpiError(
            `Field unit ${unit}`,
            `bits ${bit}..${unitEnd - 1}`,
            `crosses the register at byte ${offset}`,
          );
        units.push([unit, bits]);
        placed.set(unit, (placed.get(unit) ?? 0) + 1);
      }
      bit = unitEnd;
    }
    return field(region, flags, units);
  });
  for (const [unit] of table) {
    if (unit !== null && placed.get(unit) !== 1)
      throw new AcpiError(`Field unit ${unit}`, region, "must lie in exactly one register");
  }
  return fields;
}
