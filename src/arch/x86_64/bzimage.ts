/**
 * Linux bzImage files (Documentation/arch/x86/boot.rst): the setup header is parsed and checked, and
 * the protected-mode kernel that follows the real-mode setup sectors is loaded for the 64-bit entry
 * at load address + 0x200. The real-mode setup code itself is never run (no BIOS here).
 *
 * Where the kernel goes: always at the header's `pref_address` (LOAD_PHYSICAL_ADDR, the address the
 * kernel was linked for; 16 MiB on Debian), or 16 MiB if a header says 0. Relocatable or not, that is
 * where the kernel ends up anyway: the decompressor's startup_64 never runs a kernel below
 * LOAD_PHYSICAL_ADDR and moves a non-relocatable one there unconditionally, so loading lower would only
 * make its in-place buffer [load, load + init_size) overlap what it copies. `relocatable_kernel` and
 * `kernel_alignment` are reported, not acted on; KASLR (if the kernel has it) picks its own place from
 * the e820 table.
 */
import type { GuestMemory } from "../../memory/guest-memory.ts";
import { hex } from "../../numbers.ts";
import { LinuxBootError, mibToCover } from "./boot-error.ts";
import {
  BOOT_FLAG_MAGIC,
  LOADED_HIGH,
  SETUP_HEADER_AREA_END,
  SETUP_HEADER_LAYOUT,
  SETUP_HEADER_MAGIC,
  SETUP_HEADER_OFFSET,
  XLF_KERNEL_64,
} from "./boot-params.ts";
import { DEFAULT_KERNEL_LOAD_ADDRESS, HIGH_MEMORY_START } from "./layout.ts";
import { getField, viewOf } from "./struct-layout.ts";

/** Boot protocol 2.12 added xloadflags, and with it XLF_KERNEL_64 (the 64-bit entry at +0x200). */
export const MIN_BOOT_PROTOCOL = 0x020c;
/** The 64-bit entry point's offset from the start of the protected-mode kernel. */
export const STARTUP_64_OFFSET = 0x200;
/** A sector of the real-mode part. */
const SECTOR_SIZE = 512;
/** setup_sects = 0 means 4 (boot.rst, setup_sects). */
const DEFAULT_SETUP_SECTS = 4;
/** syssize counts 16-byte paragraphs. */
const PARAGRAPH = 16;
/** The byte at 0x201 (the jump's displacement) gives the header's end: 0x202 + that byte (boot.rst). */
const JUMP_DISPLACEMENT_OFFSET = 0x201;
const JUMP_END_BASE = 0x202;

/** A parsed, checked bzImage. Byte arrays are views into the image, not copies. */
export interface BzImage {
  /** Boot protocol version as in the header (0x020f is 2.15). */
  readonly version: number;
  /** Real-mode part: (setup_sects + 1) sectors; the protected-mode kernel starts here in the file. */
  readonly setupSize: number;
  readonly loadflags: number;
  readonly xloadflags: number;
  readonly relocatable: boolean;
  readonly kernelAlignment: number;
  /** The header's pref_address (0 if it gives none). */
  readonly prefAddress: number;
  /** Bytes the kernel needs from its load address while it decompresses and initialises. */
  readonly initSize: number;
  /** Longest command line without its NUL. */
  readonly cmdlineSize: number;
  /** Highest address the initramfs's last byte may have. */
  readonly initrdAddrMax: number;
  /** The compressed kernel, as an offset into the protected-mode kernel and a length. */
  readonly payloadOffset: number;
  readonly payloadLength: number;
  /** The setup header's bytes, from 0x1f1 to its end: what the zero page's `hdr` starts as. */
  readonly setupHeader: Uint8Array;
  /** The protected-mode kernel (syssize × 16 bytes after the setup sectors). */
  readonly kernel: Uint8Array;
}

/** "2.15" from 0x020f. */
export function protocolText(version: number): string {
  return `${version >> 8}.${(version & 0xff).toString().padStart(2, "0")}`;
}

/**
 * Parses and checks a bzImage's setup header.
 * @throws {LinuxBootError} no "HdrS" magic at 0x202, a bad boot_flag, a protocol older than 2.12, a
 * truncated file, a kernel that is not loaded high or has no 64-bit entry point.
 */
export function parseBzImage(image: Uint8Array): BzImage {
  const H = SETUP_HEADER_LAYOUT.fields;
  const base = SETUP_HEADER_OFFSET;
  const v = viewOf(image);
  const magicEnd = base + H.header.offset + H.header.size;
  if (image.length < magicEnd || getField(v, base, H.header) !== SETUP_HEADER_MAGIC) {
    throw new LinuxBootError(`not a bzImage: no HdrS magic at ${hex(base + H.header.offset)}`);
  }
  const bootFlag = getField(v, base, H.boot_flag);
  if (bootFlag !== BOOT_FLAG_MAGIC) {
    throw new LinuxBootError(
      `not a bzImage: boot_flag at ${hex(base + H.boot_flag.offset)} is ${hex(bootFlag)}, expected ${hex(BOOT_FLAG_MAGIC)}`,
    );
  }
  if (image.length < base + H.version.offset + H.version.size) {
    throw new LinuxBootError(`truncated: the file ends at ${image.length} bytes, inside the setup header`);
  }
  const version = getField(v, base, H.version);
  if (version < MIN_BOOT_PROTOCOL) {
    throw new LinuxBootError(
      `boot protocol ${protocolText(version)} is too old: bunvmm needs ${protocolText(MIN_BOOT_PROTOCOL)} (64-bit entry)`,
    );
  }
  // The header's own length (its jump over itself), clamped to the zero page's room for it; it must
  // reach init_size, the last member bunvmm reads (every 2.12+ header does).
  const headerEnd = Math.min(JUMP_END_BASE + v.getUint8(JUMP_DISPLACEMENT_OFFSET), SETUP_HEADER_AREA_END);
  const needed = base + H.init_size.offset + H.init_size.size;
  if (headerEnd < needed) {
    throw new LinuxBootError(
      `not a bzImage: its setup header ends at ${hex(headerEnd)}, before init_size at ${hex(base + H.init_size.offset)}`,
    );
  }
  if (image.length < headerEnd) {
    throw new LinuxBootError(
      `truncated: the setup header ends at ${hex(headerEnd)}, the file has ${image.length} bytes`,
    );
  }
  const setupSize = ((getField(v, base, H.setup_sects) || DEFAULT_SETUP_SECTS) + 1) * SECTOR_SIZE;
  const kernelSize = getField(v, base, H.syssize) * PARAGRAPH;
  if (image.length < setupSize + kernelSize) {
    throw new LinuxBootError(
      `truncated: setup says ${setupSize + kernelSize} bytes (${setupSize} of setup + ${kernelSize} of kernel), file has ${image.length}`,
    );
  }
  const loadflags = getField(v, base, H.loadflags);
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new LinuxBootError(
      "a zImage (LOADED_HIGH clear in loadflags) cannot be booted: bunvmm loads kernels at or above 1 MiB",
    );
  }
  const xloadflags = getField(v, base, H.xloadflags);
  if ((xloadflags & XLF_KERNEL_64) === 0) {
    throw new LinuxBootError(
      "this kernel has no 64-bit entry point (XLF_KERNEL_64 clear in xloadflags): bunvmm enters bzImages in 64-bit mode",
    );
  }
  const prefAddress = v.getBigUint64(base + H.pref_address.offset, true);
  if (prefAddress > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new LinuxBootError(`pref_address 0x${prefAddress.toString(16)} is beyond any guest address`);
  }
  return {
    version,
    setupSize,
    loadflags,
    xloadflags,
    relocatable: getField(v, base, H.relocatable_kernel) !== 0,
    kernelAlignment: getField(v, base, H.kernel_alignment),
    prefAddress: Number(prefAddress),
    initSize: getField(v, base, H.init_size),
    cmdlineSize: getField(v, base, H.cmdline_size),
    initrdAddrMax: getField(v, base, H.initrd_addr_max),
    payloadOffset: getField(v, base, H.payload_offset),
    payloadLength: getField(v, base, H.payload_length),
    setupHeader: image.subarray(base, headerEnd),
    kernel: image.subarray(setupSize, setupSize + kernelSize),
  };
}

/** Where the protected-mode kernel is loaded: pref_address, or 16 MiB when the header gives none. */
export function bzImageLoadAddress(bz: BzImage): number {
  return bz.prefAddress !== 0 ? bz.prefAddress : DEFAULT_KERNEL_LOAD_ADDRESS;
}

/** The guest RAM the kernel occupies from its load address: its image or init_size, whichever is larger. */
export function bzImageExtent(bz: BzImage): { start: number; end: number } {
  const start = bzImageLoadAddress(bz);
  return { start, end: start + Math.max(bz.initSize, bz.kernel.length) };
}

/**
 * Copies the protected-mode kernel to its load address after checking that [load, load + init_size)
 * lies in RAM below `lowRamEnd` (the top of RAM under the 32-bit hole).
 * @returns the range the kernel owns, for placing the initramfs above it.
 * @throws {LinuxBootError} when the kernel would sit below 1 MiB or does not fit in RAM.
 */
export function loadBzImage(
  memory: GuestMemory,
  bz: BzImage,
  lowRamEnd: number,
): { start: number; end: number } {
  const { start, end } = bzImageExtent(bz);
  if (start < HIGH_MEMORY_START) {
    throw new LinuxBootError(
      `pref_address ${hex(start)} is below 1 MiB, where bunvmm keeps the boot structures`,
    );
  }
  if (end > lowRamEnd || !memory.contains(start, end - start)) {
    throw new LinuxBootError(
      `the kernel needs guest RAM [${hex(start)}, ${hex(end)}) (pref_address + init_size) but RAM below 4 GiB ends at ` +
        `${hex(lowRamEnd)}: give the VM at least ${mibToCover(end)} MiB`,
    );
  }
  memory.write(start, bz.kernel);
  memory.slice(start + bz.kernel.length, end - start - bz.kernel.length).fill(0);
  return { start, end };
}

/** The compressed kernel inside the protected-mode part (what `payload_offset`/`payload_length` name). */
export function bzImagePayload(bz: BzImage): Uint8Array {
  if (bz.payloadOffset + bz.payloadLength > bz.kernel.length) {
    throw new LinuxBootError(
      `truncated: payload_offset + payload_length is ${bz.payloadOffset + bz.payloadLength}, the kernel has ${bz.kernel.length} bytes`,
    );
  }
  return bz.kernel.subarray(bz.payloadOffset, bz.payloadOffset + bz.payloadLength);
}

/** Magic numbers of the compressors Linux can use for its payload (arch/x86/boot/compressed). */
const COMPRESSION_MAGICS: ReadonlyArray<readonly [string, readonly number[]]> = [
  ["gzip", [0x1f, 0x8b]],
  ["bzip2", [0x42, 0x5a, 0x68]],
  ["lzma", [0x5d, 0x00, 0x00]],
  ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ["lzo", [0x89, 0x4c, 0x5a, 0x4f]],
  ["lz4", [0x02, 0x21, 0x4c, 0x18]], // lz4's legacy frame, as `lz4 -l` writes it
  ["zstd", [0x28, 0xb5, 0x2f, 0xfd]],
];

/** The payload's compressor, from its magic number, for logs; undefined if unrecognised. */
export function payloadCompression(bz: BzImage): string | undefined {
  const p = bzImagePayload(bz);
  return COMPRESSION_MAGICS.find(([, magic]) => magic.every((b, i) => p[i] === b))?.[0];
}
