/**
 * The Generic Event Device's type: its fixed window and GSI, the DSDT device `\_SB.GED_` whose `_EVT`
 * dispatches each GedEvent bit, save/restore. The register (what vCPU workers run) is acpi-ged.ts.
 *
 * Threads: VMM thread.
 */
import {
  type Aml,
  and,
  device,
  FieldAccess,
  FieldUpdate,
  ifThen,
  local,
  method,
  methodCall,
  name,
  nameString,
  notify,
  operationRegion,
  RegionSpace,
  store,
  string,
} from "../src/arch/x86_64/acpi/aml.ts";
import { NOTIFY_BUTTON_PRESSED } from "../src/arch/x86_64/acpi/notify-values.ts";
import { registerFields } from "../src/arch/x86_64/acpi/register-fields.ts";
import { interrupt, resourceTemplate } from "../src/arch/x86_64/acpi/resource-template.ts";
import { GED_BASE, GED_GSI } from "../src/arch/x86_64/layout.ts";
import {
  type AcpiGedSpec,
  attachAcpiGed,
  createGedState,
  GED_FIELDS,
  GED_NOTIFICATION_OFFSET,
  GED_SIZE,
  GedEvent,
} from "./acpi-ged.ts";
import { restoreBuffers, saveBuffers } from "./device-state.ts";
import { defineDeviceType } from "./device-type.ts";
import { CPU_SCAN_METHOD_PATH, GED_NAME, POWER_BUTTON_PATH } from "./dsdt-paths.ts";

const GED_HID = "ACPI0013";
const REGION = "GDST";
const GDAT = nameString("GDAT");

/** `GED_` with its register at `base` and interrupt `gsi`, to be placed in `\_SB`. */
export function gedAml(base: number, gsi: number): Aml {
  const events = local(0);
  return device(GED_NAME, [
    name("_HID", string(GED_HID)),
    name("_UID", 0),
    name(
      "_CRS",
      resourceTemplate([
        interrupt(
          { usage: "ResourceConsumer", trigger: "Edge", polarity: "ActiveHigh", sharing: "Exclusive" },
          [gsi],
        ),
      ]),
    ),
    operationRegion(REGION, RegionSpace.SystemMemory, base, GED_SIZE),
    ...registerFields(REGION, GED_FIELDS, [
      { offset: GED_NOTIFICATION_OFFSET, flags: { access: FieldAccess.DWord, update: FieldUpdate.Preserve } },
    ]),
    method("_EVT", 1, [
      store(GDAT, events),
      ifThen(and(events, GedEvent.CpuHotplug), [methodCall(CPU_SCAN_METHOD_PATH)]),
      ifThen(and(events, GedEvent.PowerButton), [notify(POWER_BUTTON_PATH, NOTIFY_BUTTON_PRESSED)]),
    ]),
  ]);
}

/** Layout of saved state: the GED_STATE_WORDS words (pending events, ignored accesses). */
const GED_STATE_VERSION = 1;
const GED_DEVICE_NAME = "ged";

/** The GED at GED_BASE raising GED_GSI. The VMM raises events through a GedState over `spec.state`. */
export const acpiGedType = defineDeviceType<AcpiGedSpec>({
  kind: "acpi-ged",
  create: (resources) => ({
    kind: "acpi-ged",
    name: GED_DEVICE_NAME,
    base: resources.fixedMmio(GED_DEVICE_NAME, GED_BASE, GED_SIZE).base,
    gsi: resources.fixedGsi(GED_DEVICE_NAME, GED_GSI),
    state: createGedState(),
  }),
  attach: attachAcpiGed,
  aml: (spec) => ({ systemBus: [gedAml(spec.base, spec.gsi)] }),
  save: (spec) => saveBuffers(GED_STATE_VERSION, [spec.state]),
  restore: (spec, state) => restoreBuffers(spec.name, GED_STATE_VERSION, state, [spec.state]),
});
