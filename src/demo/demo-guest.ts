/** The built-in demo guest image (source: demo-guest.S), compiled into the binary. */
import { DEMO_GUEST_BASE64 } from "./demo-guest.gen.ts";

/** A fresh copy of the demo's raw image. */
export function demoGuestImage(): Uint8Array {
  return new Uint8Array(Buffer.from(DEMO_GUEST_BASE64, "base64"));
}
