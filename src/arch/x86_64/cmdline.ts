/**
 * The kernel command line in guest RAM: UTF-8 bytes and a NUL at CMDLINE_ADDRESS (below 1 MiB, where
 * both protocols may point: boot_params.cmd_line_ptr, hvm_start_info.cmdline_paddr).
 */
import type { GuestMemory } from "../../memory/guest-memory.ts";
import { LinuxBootError } from "./boot-error.ts";
import { CMDLINE_ADDRESS, CMDLINE_REGION_SIZE } from "./layout.ts";

/** Linux/x86's COMMAND_LINE_SIZE, with the NUL: what a PVH kernel, which has no cmdline_size, accepts. */
export const COMMAND_LINE_SIZE = 2048;

/** A limit on the command line's length without its NUL, and where that limit comes from (for errors). */
export interface CmdlineLimit {
  readonly maxBytes: number;
  readonly source: string;
}

/** The bytes written for `cmdline`: UTF-8 and a terminating NUL. */
export function encodeCmdline(cmdline: string): Uint8Array {
  const text = new TextEncoder().encode(cmdline);
  const out = new Uint8Array(text.length + 1);
  out.set(text);
  return out;
}

/**
 * Writes the command line at CMDLINE_ADDRESS after checking it against the kernel's limit and the
 * region's size.
 * @returns its address and its size including the NUL.
 * @throws {LinuxBootError} "payload.cmdline is N bytes; this kernel accepts at most M (cmdline_size)".
 */
export function writeCmdline(
  memory: GuestMemory,
  cmdline: string,
  limit: CmdlineLimit,
): { address: number; size: number } {
  const bytes = encodeCmdline(cmdline);
  const length = bytes.length - 1;
  if (bytes.subarray(0, length).includes(0))
    throw new LinuxBootError("payload.cmdline contains a NUL character");
  const max = Math.min(limit.maxBytes, CMDLINE_REGION_SIZE - 1);
  if (length > max) {
    const source = max === limit.maxBytes ? limit.source : "bunvmm's command-line area";
    throw new LinuxBootError(
      `payload.cmdline is ${length} bytes; this kernel accepts at most ${max} (${source})`,
    );
  }
  memory.write(CMDLINE_ADDRESS, bytes);
  return { address: CMDLINE_ADDRESS, size: bytes.length };
}
