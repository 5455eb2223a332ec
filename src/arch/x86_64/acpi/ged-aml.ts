/**
 * The DSDT side of the Generic Event Device (devices/acpi-ged.ts, ACPI 6.5 §5.6.9): `\_SB.GED_` with its
 * interrupt, its notification register as a Field from GED_FIELDS, and `_EVT`, which reads GDAT once (the
 * read clears it) and runs the handler of each GedEvent bit that is set.
 * @module
 */
import { GED_FIELDS, GED_NOTIFICATION_OFFSET, GED_SIZE, GedEvent } from "../../../../devices/acpi-ged.ts";
import { GED_BASE, GED_GSI } from "../layout.ts";
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
} from "./aml.ts";
import { CPU_SCAN_METHOD_PATH, GED_NAME, POWER_BUTTON_PATH } from "./dsdt-paths.ts";
import { NOTIFY_BUTTON_PRESSED } from "./notify-values.ts";
import { registerFields } from "./register-fields.ts";
import { interrupt, resourceTemplate } from "./resource-template.ts";

const GED_HID = "ACPI0013";
const REGION = "GDST";
const GDAT = nameString("GDAT");

/** `GED_`, to be placed in `\_SB`. */
export function gedAml(): Aml {
  const events = local(0);
  return device(GED_NAME, [
    name("_HID", string(GED_HID)),
    name("_UID", 0),
    name(
      "_CRS",
      resourceTemplate([
        interrupt(
          { usage: "ResourceConsumer", trigger: "Edge", polarity: "ActiveHigh", sharing: "Exclusive" },
          [GED_GSI],
        ),
      ]),
    ),
    operationRegion(REGION, RegionSpace.SystemMemory, GED_BASE, GED_SIZE),
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
