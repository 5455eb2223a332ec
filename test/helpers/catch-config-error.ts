/** Test helper: the ConfigError a call throws, so a test can assert its message and fields. */
import { expect } from "bun:test";
import { ConfigError } from "../../src/config/index.ts";

/** Runs `fn` and returns the ConfigError it throws; fails the test if it returns or throws something else. */
export function catchConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, but the call returned");
}

/** The ConfigError a promise rejects with (for loadConfigFile). */
export async function rejectedConfigError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, but the promise resolved");
}
