/**
 * Loads a Linux kernel into guest RAM for one of two boot protocols and returns the boot vCPU's entry
 * state (docs/boot-protocols.md):
 *
 * - "bzimage": Linux's 64-bit boot protocol. Protected-mode kernel at pref_address, zero page at
 *   ZERO_PAGE_ADDRESS, boot GDT at BOOT_GDT_ADDRESS, identity page tables at BOOT_PML4_ADDRESS; entered
 *   in long mode at load + 0x200 with RSI = zero page.
 * - "elf": PVH. PT_LOAD segments at their physical addresses, hvm_start_info at PVH_START_INFO_ADDRESS;
 *   entered in flat 32-bit protected mode at the XEN_ELFNOTE_PHYS32_ENTRY address with EBX = start info.
 *
 * Both: command line at CMDLINE_ADDRESS, initramfs page-aligned at the top of RAM below the 32-bit hole
 * (and below a bzImage's initrd_addr_max), the e820 table of e820.ts. Only the boot vCPU gets these
 * registers; the others wait for INIT/SIPI from the guest.
 */

import type { Regs, Sregs } from "../../kvm/vcpu-fd.ts";
import type { GuestMemory } from "../../memory/guest-memory.ts";
import { hex } from "../../numbers.ts";
import { LinuxBootError } from "./boot-error.ts";
import { buildZeroPage } from "./boot-params.ts";
import { loadBzImage, parseBzImage, payloadCompression, protocolText, STARTUP_64_OFFSET } from "./bzimage.ts";
import { COMMAND_LINE_SIZE, writeCmdline } from "./cmdline.ts";
import { type E820Entry, e820Table } from "./e820.ts";
import { parseElf64 } from "./elf.ts";
import { bootGdtBytes } from "./gdt.ts";
import { loadInitramfs } from "./initrd.ts";
import { BOOT_GDT_ADDRESS, MMIO_HOLE_START, PVH_START_INFO_ADDRESS, ZERO_PAGE_ADDRESS } from "./layout.ts";
import { linux64EntryRegs, longModeSregs } from "./long-mode.ts";
import { writeIdentityPageTables } from "./page-tables.ts";
import {
  buildStartInfo,
  loadElfSegments,
  pvhEntryPoint,
  pvhEntryRegs,
  pvhEntrySregs,
  writeStartInfo,
} from "./pvh.ts";

export interface LinuxBootOptions {
  readonly kernelImage: Uint8Array;
  readonly format: "bzimage" | "elf";
  readonly cmdline: string;
  readonly initramfs?: Uint8Array;
  /** Guest RAM in bytes, as given to ramRanges() when the memory was mapped. */
  readonly ramSize: number;
  /** Where the ACPI tables' RSDP is; absent, the kernel scans the BIOS area (0xe0000–0xfffff) for it. */
  readonly rsdpAddress?: number;
}

/** What the builder needs once the kernel is in RAM. */
export interface LinuxBoot {
  readonly protocol: "linux64" | "pvh";
  /** One line for logs: protocol, entry point, where things went. */
  readonly entry: string;
  /** General registers of the boot vCPU (vCPU 0). */
  readonly bootRegs: Regs;
  /** Segment and control registers of the boot vCPU, from its current ones (KVM_GET_SREGS). */
  bootSregsFrom(current: Sregs): Sregs;
  /** The memory map given to the kernel. */
  readonly e820: readonly E820Entry[];
  readonly kernel: { readonly start: number; readonly end: number };
  readonly cmdline: { readonly address: number; readonly size: number };
  readonly initramfs?: { readonly address: number; readonly size: number };
}

/**
 * Writes the kernel, command line, initramfs and boot structures into `memory`.
 * @throws {LinuxBootError} for an image that is not a bootable kernel of `format`, a command line
 * longer than the kernel accepts, or a kernel or initramfs that does not fit in RAM.
 */
export function loadLinux(memory: GuestMemory, opts: LinuxBootOptions): LinuxBoot {
  return opts.format === "bzimage" ? loadBzImageKernel(memory, opts) : loadPvhKernel(memory, opts);
}

function lowRamEnd(ramSize: number): number {
  return Math.min(ramSize, MMIO_HOLE_START);
}

function describeInitrd(initrd: { address: number; size: number } | undefined): string {
  return initrd ? `, initramfs ${hex(initrd.address)} (${initrd.size} bytes)` : "";
}

function loadBzImageKernel(memory: GuestMemory, opts: LinuxBootOptions): LinuxBoot {
  const bz = parseBzImage(opts.kernelImage);
  const top = lowRamEnd(opts.ramSize);
  const kernel = loadBzImage(memory, bz, top);
  const cmdline = writeCmdline(memory, opts.cmdline, { maxBytes: bz.cmdlineSize, source: "cmdline_size" });
  const initramfs = opts.initramfs
    ? loadInitramfs(memory, opts.initramfs, { lowest: kernel.end, ramTop: top, addrMax: bz.initrdAddrMax })
    : undefined;
  const e820 = e820Table(opts.ramSize);
  memory.write(
    ZERO_PAGE_ADDRESS,
    buildZeroPage({
      setupHeader: bz.setupHeader,
      cmdlineAddress: cmdline.address,
      initramfs,
      rsdpAddress: opts.rsdpAddress,
      e820,
    }),
  );
  memory.write(BOOT_GDT_ADDRESS, bootGdtBytes());
  writeIdentityPageTables(memory);
  const compression = payloadCompression(bz);
  return {
    protocol: "linux64",
    entry:
      `bzImage (boot protocol ${protocolText(bz.version)}${compression ? `, ${compression}` : ""}) at ${hex(kernel.start)}, ` +
      `64-bit entry ${hex(kernel.start + STARTUP_64_OFFSET)}, zero page ${hex(ZERO_PAGE_ADDRESS)}${describeInitrd(initramfs)}`,
    bootRegs: linux64EntryRegs(kernel.start),
    bootSregsFrom: longModeSregs,
    e820,
    kernel,
    cmdline,
    initramfs,
  };
}

function loadPvhKernel(memory: GuestMemory, opts: LinuxBootOptions): LinuxBoot {
  const elf = parseElf64(opts.kernelImage);
  const entry = pvhEntryPoint(elf); // before loading anything: a non-PVH ELF fails fast
  const top = lowRamEnd(opts.ramSize);
  const kernel = loadElfSegments(memory, elf, top);
  if (entry < kernel.start || entry >= kernel.end) {
    throw new LinuxBootError(
      `the PVH entry point ${hex(entry)} lies outside the loaded kernel [${hex(kernel.start)}, ${hex(kernel.end)})`,
    );
  }
  const cmdline = writeCmdline(memory, opts.cmdline, {
    maxBytes: COMMAND_LINE_SIZE - 1,
    source: "COMMAND_LINE_SIZE",
  });
  const initramfs = opts.initramfs
    ? loadInitramfs(memory, opts.initramfs, { lowest: kernel.end, ramTop: top })
    : undefined;
  const e820 = e820Table(opts.ramSize);
  writeStartInfo(
    memory,
    buildStartInfo({
      cmdlineAddress: cmdline.address,
      initramfs,
      rsdpAddress: opts.rsdpAddress,
      memmap: e820,
    }),
  );
  return {
    protocol: "pvh",
    entry: `vmlinux via PVH: kernel [${hex(kernel.start)}, ${hex(kernel.end)}), 32-bit entry ${hex(entry)}, start info ${hex(PVH_START_INFO_ADDRESS)}${describeInitrd(initramfs)}`,
    bootRegs: pvhEntryRegs(entry),
    bootSregsFrom: pvhEntrySregs,
    e820,
    kernel,
    cmdline,
    initramfs,
  };
}
