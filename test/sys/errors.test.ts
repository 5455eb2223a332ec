/**
 * One error base: every error class a user can meet is a BunvmmError with the kind that says whose
 * problem it is, so the CLI prints it as one line and the API derives its status from the kind.
 */
import { describe, expect, test } from "bun:test";
import { ApiError } from "../../src/api/api-error.ts";
import { AcpiError } from "../../src/arch/x86_64/acpi/acpi-error.ts";
import { LinuxBootError } from "../../src/arch/x86_64/boot-error.ts";
import { UnknownCpuFeatureError } from "../../src/arch/x86_64/cpuid.ts";
import { ConfigError } from "../../src/config/index.ts";
import { BunvmmError, type ErrorKind, isBunvmmError } from "../../src/errors.ts";
import { KvmError } from "../../src/kvm/kvm-error.ts";
import { GuestMemoryError } from "../../src/memory/guest-memory.ts";
import { LibcError } from "../../src/sys/libc-error.ts";
import { HostError } from "../../src/vmm/builder.ts";
import { VcpuTimeoutError } from "../../src/vmm/cpu-manager.ts";
import { DeadlineError } from "../../src/vmm/deadline.ts";
import { PayloadError } from "../../src/vmm/payload.ts";
import { LifecycleError, ResizeError } from "../../src/vmm/vm.ts";

const ENOENT = 2;

const CASES: ReadonlyArray<readonly [string, Error, ErrorKind]> = [
  [
    "ConfigError",
    new ConfigError([
      { key: "cpus.boot_vcpus", value: 0, expected: "1..255", message: "cpus.boot_vcpus = 0" },
    ]),
    "input",
  ],
  ["KvmError", new KvmError("KVM_CREATE_VM", ENOENT), "host"],
  ["LibcError", new LibcError("eventfd", ENOENT), "host"],
  ["GuestMemoryError", new GuestMemoryError(0x1000, 8), "input"],
  ["HostError", new HostError("this host's KVM lacks KVM_CAP_PIT2"), "host"],
  ["PayloadError", new PayloadError("/nope", "no such file"), "input"],
  ["LifecycleError", new LifecycleError("pause", "Paused"), "refused"],
  ["ResizeError", new ResizeError("a vCPU removal is pending"), "refused"],
  ["VcpuTimeoutError", new VcpuTimeoutError("pause", 1000, [], "rolled back"), "timeout"],
  ["DeadlineError", new DeadlineError("the device worker", 1000), "timeout"],
  ["LinuxBootError", new LinuxBootError("not a bzImage"), "input"],
  ["AcpiError", new AcpiError("AML NameSeg", "1ABC", "must start with A-Z or _"), "input"],
  ["UnknownCpuFeatureError", new UnknownCpuFeatureError("sse9", ["avx"]), "input"],
  ["ApiError 400", new ApiError(400, "bad body"), "input"],
  ["ApiError 405", new ApiError(405, "wrong method"), "refused"],
];

describe("one error base", () => {
  for (const [name, error, kind] of CASES) {
    test(`${name} is a BunvmmError of kind ${kind}, printed as one line by the CLI`, () => {
      expect(error).toBeInstanceOf(BunvmmError);
      expect(isBunvmmError(error)).toBe(true);
      expect(isBunvmmError(error)).toBe(true);
      expect((error as BunvmmError).kind).toBe(kind);
      expect(error.message).not.toContain("\n");
    });
  }

  test("a plain Error is a bug, not a user error", () => {
    expect(isBunvmmError(new Error("bug"))).toBe(false);
    expect(isBunvmmError(new TypeError("bug"))).toBe(false);
  });

  test("the cause is kept", () => {
    const cause = new KvmError("KVM_RUN", ENOENT);
    const e = new BunvmmError("guest", "vCPU 0 worker failed", { cause });
    expect(e.cause).toBe(cause);
  });
});
