/**
 * The types a vCPU worker's run loop sees of the devices: the specs it attaches from and the buses it
 * dispatches exits to. The devices themselves are listed in devices/registry.ts.
 */
export type { Buses, DeviceContext } from "./device-type.ts";
export type { DeviceSpec } from "./registry.ts";
