/**
 * Where the initramfs goes: page-aligned, as high as possible below the lower of the kernel's limit
 * (a bzImage's initrd_addr_max) and the top of RAM under the 32-bit hole, and above the kernel
 * (Firecracker and cloud-hypervisor place it the same way; boot.rst, initrd_addr_max). High placement
 * leaves the space right after the kernel free for its decompression and early allocations.
 */
import { type GuestMemory, PAGE_SIZE } from "../../memory/guest-memory.ts";
import { hex } from "../../numbers.ts";
import { LinuxBootError, mibToCover } from "./boot-error.ts";

export interface InitrdBounds {
  /** The lowest address it may start at: the end of the kernel. */
  readonly lowest: number;
  /** RAM below the hole ends here. */
  readonly ramTop: number;
  /** The highest address its last byte may have (a bzImage's initrd_addr_max), if the kernel sets one. */
  readonly addrMax?: number;
}

function alignDown(n: number, to: number): number {
  return Math.floor(n / to) * to;
}

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * The address for an initramfs of `size` bytes.
 * @throws {LinuxBootError} for an empty initramfs, or one that does not fit between the kernel's end
 * and the top (naming which limit binds and how much RAM would do).
 */
export function placeInitramfs(size: number, bounds: InitrdBounds): number {
  if (size === 0) throw new LinuxBootError("the initramfs is empty");
  const byKernel = bounds.addrMax === undefined ? Infinity : bounds.addrMax + 1;
  const top = Math.min(bounds.ramTop, byKernel);
  const lowest = alignUp(bounds.lowest, PAGE_SIZE);
  const address = alignDown(top - size, PAGE_SIZE);
  if (address < lowest) {
    const mib = (size / (1 << 20)).toFixed(1);
    if (byKernel < bounds.ramTop && lowest + size <= bounds.ramTop) {
      throw new LinuxBootError(
        `the initramfs (${size} bytes, ${mib} MiB) does not fit between the kernel's end at ${hex(lowest)} and ` +
          `${hex(byKernel)}, the highest address this kernel accepts for it (initrd_addr_max)`,
      );
    }
    throw new LinuxBootError(
      `the initramfs (${size} bytes, ${mib} MiB) does not fit between the kernel's end at ${hex(lowest)} and the top of ` +
        `RAM at ${hex(bounds.ramTop)}: give the VM at least ${mibToCover(alignUp(lowest + size, PAGE_SIZE))} MiB`,
    );
  }
  return address;
}

/** Places and copies the initramfs. @returns its address and size. @throws {LinuxBootError} see placeInitramfs. */
export function loadInitramfs(
  memory: GuestMemory,
  initramfs: Uint8Array,
  bounds: InitrdBounds,
): { address: number; size: number } {
  const address = placeInitramfs(initramfs.length, bounds);
  memory.write(address, initramfs);
  return { address, size: initramfs.length };
}
