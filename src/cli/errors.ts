/**
 * Which errors are the user's to fix (one line, no stack trace) and which are bunvmm bugs (full
 * report). Exit codes a script can rely on.
 */

import { AcpiError } from "../arch/x86_64/acpi/acpi-error.ts";
import { LinuxBootError } from "../arch/x86_64/boot-error.ts";
import { UnknownCpuFeatureError } from "../arch/x86_64/cpuid.ts";
import { ConfigError } from "../config/index.ts";
import { KvmError } from "../kvm/kvm-error.ts";
import { GuestMemoryError } from "../memory/guest-memory.ts";
import { HostError } from "../vmm/builder.ts";
import { VcpuTimeoutError } from "../vmm/cpu-manager.ts";
import { DeadlineError } from "../vmm/deadline.ts";
import { PayloadError } from "../vmm/payload.ts";
import { LifecycleError, ResizeError } from "../vmm/vm.ts";

/** Exit codes of `bunvmm`. */
export const EXIT_OK = 0;
/** Bad input, a host problem, or a refused operation. */
export const EXIT_ERROR = 1;
/** The guest crashed (triple fault, an instruction KVM cannot run, a failed entry). */
export const EXIT_GUEST_CRASH = 2;

const USER_ERRORS = [
  ConfigError,
  KvmError,
  GuestMemoryError,
  HostError,
  PayloadError,
  LifecycleError,
  ResizeError,
  VcpuTimeoutError,
  DeadlineError,
  LinuxBootError,
  AcpiError,
  UnknownCpuFeatureError,
] as const;

/** True for errors whose message is the whole story for a user. */
export function isUserError(e: unknown): e is Error {
  return USER_ERRORS.some((cls) => e instanceof cls);
}
