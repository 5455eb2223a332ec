/**
 * The one error class of the ACPI layer: a table or AML term that cannot be built. It is thrown while the
 * tables are being built (at term construction), never later when a guest reads them.
 * @module
 */

import { BunvmmError } from "../../../errors.ts";

/** What could not be built, with the offending value: `AML NameSeg "1ABC": must start with A-Z or _`. */
export class AcpiError extends BunvmmError {
  override readonly name = "AcpiError";
  constructor(
    /** The term or table field, e.g. `AML NameSeg`, `MADT`, `ACPI tables`. */
    readonly what: string,
    /** The value that was refused. */
    readonly value: unknown,
    /** Why, in words. */
    readonly reason: string,
  ) {
    super("input", `${what} ${typeof value === "string" ? JSON.stringify(value) : String(value)}: ${reason}`);
  }
}
