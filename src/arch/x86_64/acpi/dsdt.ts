/**
 * DSDT (ACPI 6.5, section 5.2.11.1): the AML definition block, composed from what the machine's devices
 * contribute (each device type's `aml`, devices/device-type.ts): their objects go into one `\_SB`
 * scope in the order given, their root objects (such as `\_S5`) after it. This module knows no device.
 * @module
 */
import { type Aml, encodeAml, scope } from "./aml.ts";
import { buildSdt, SDT_HEADER } from "./sdt-header.ts";

/** The DSDT's signature, also its key in AcpiTables. */
export const DSDT_SIGNATURE = "DSDT";
/** Revision 2 and above: AML integers are 64-bit (section 5.2.11.1). */
export const DSDT_REVISION = 2;
/** The system bus scope every bunvmm device sits in. */
export const SYSTEM_BUS = "\\_SB";

/** The DSDT's content: device objects for `\_SB`, in order (a method's callee before its caller), and root objects. */
export interface DsdtContent {
  readonly systemBus: readonly Aml[];
  readonly root: readonly Aml[];
}

/** The DSDT's terms: `\_SB` with the devices, then the root objects. */
export function dsdtAml(content: DsdtContent): Aml[] {
  return [scope(SYSTEM_BUS, [...content.systemBus]), ...content.root];
}

/** Builds the DSDT from the devices' AML. */
export function buildDsdt(content: DsdtContent): Uint8Array {
  const body = encodeAml(dsdtAml(content));
  return buildSdt(DSDT_SIGNATURE, DSDT_REVISION, SDT_HEADER.SIZE + body.length, (_view, bytes) =>
    bytes.set(body, SDT_HEADER.SIZE),
  );
}
