/** The demo image compiled into bunvmm is exactly what its assembly source builds to. */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { assembleRawGuest } from "../../src/demo/assemble.ts";
import { demoGuestImage } from "../../src/demo/demo-guest.ts";

test("demo-guest.gen.ts matches demo-guest.S (run `npm run gen:demo` after editing the source)", () => {
  const fresh = assembleRawGuest(join(import.meta.dir, "../../src/demo/demo-guest.S"));
  expect(Buffer.from(demoGuestImage()).equals(Buffer.from(fresh))).toBe(true);
});
