/**
 * Limits and defaults of a VM config, named once so that the checks and their messages agree.
 * @module
 */

import { GIB, KIB, MIB } from "../numbers.ts";

/** Config sizes are binary (cloud-hypervisor's "512M" is 512 MiB). */
export { GIB, KIB, MIB };

/** vCPU counts are 1..255 because cloud-hypervisor's `max_vcpus` is a u8 and xAPIC ids are 8 bits. */
export const MIN_VCPUS = 1;
export const MAX_VCPUS = 255;
/** A VM without a `[cpus]` table boots one vCPU, like cloud-hypervisor's default. */
export const DEFAULT_VCPUS = 1;

/** Guest RAM is mapped in whole pages, so its size must be a multiple of the page size. */
export const MEMORY_SIZE_ALIGN = 4096;
/** Below 1 MiB there is no room for the real-mode area, the boot structures and a payload. */
export const MEMORY_SIZE_MIN = MIB;
/** 64 GiB caps what one test or demo VM can ask of the host, and keeps sizes well inside 2^53. */
export const MEMORY_SIZE_MAX = 64 * GIB;
/** cloud-hypervisor's default memory size. */
export const DEFAULT_MEMORY_SIZE = 512 * MIB;

/** x86 COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL. */
export const CMDLINE_MAX = 2047;

/** A Unix socket path must fit `sun_path` (108 bytes) with its terminating NUL. */
export const SOCKET_PATH_MAX = 107;

/**
 * `[vmm] lifecycle_timeout_ms`: how long pause, resume and shutdown wait for every worker to acknowledge.
 * The default, 1 s, is far past a pause's usual 0.05-30 ms. Below 10 ms ordinary scheduling delays (a
 * 4 ms tick at HZ=250, 10 ms at HZ=100) would fail operations; above a minute a wedged VM would hold its
 * caller (and the CLI's stop) for longer than anyone waits.
 */
export const DEFAULT_LIFECYCLE_TIMEOUT_MS = 1000;
export const LIFECYCLE_TIMEOUT_MIN_MS = 10;
export const LIFECYCLE_TIMEOUT_MAX_MS = 60_000;
