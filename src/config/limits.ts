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
