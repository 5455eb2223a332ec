/** Runs `f`, expects it to throw a LinuxBootError, and returns the error's reason for an exact match. */
import { expect } from "bun:test";
import { LinuxBootError } from "../../src/arch/x86_64/boot-error.ts";

export function reason(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(LinuxBootError);
    return (e as LinuxBootError).reason;
  }
  throw new Error("expected a LinuxBootError");
}
