/**
 * Byte units and the hex notation of addresses in messages, named once for every layer (config sizes,
 * boot structures, ACPI layout, crash reports, device resources).
 *
 * Threads: any (constants and pure functions).
 */

/** One KiB, MiB and GiB: sizes are binary (cloud-hypervisor's "512M" is 512 MiB). */
export const KIB = 1024;
export const MIB = 1024 * KIB;
export const GIB = 1024 * MIB;

/** `0x1000000`: an address, port or value in a message. */
export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}
