/**
 * Linux's x86 boot protocol structures (Documentation/arch/x86/boot.rst, "THE REAL-MODE KERNEL HEADER"
 * and "64-bit BOOT PROTOCOL"; Documentation/arch/x86/zero-page.rst): struct setup_header, which a
 * bzImage carries at file offset 0x1f1, and struct boot_params, the "zero page" a loader fills and
 * hands to the 64-bit entry point in RSI.
 *
 * Keys are the C member names, so test/arch/x86_64/boot-params.test.ts compiles a generated C program
 * against <asm/bootparam.h> and compares every offset and size. Only the members bunvmm reads or writes
 * are declared; everything else in the zero page stays zero.
 */
import { LinuxBootError } from "./boot-error.ts";
import { E820_MAX_ENTRIES_ZEROPAGE, type E820Entry } from "./e820.ts";
import { cLayout, setField, viewOf } from "./struct-layout.ts";

/** struct setup_header: offsets from its start (file offset 0x1f1, zero-page offset 0x1f1). */
export const SETUP_HEADER_LAYOUT = cLayout("struct setup_header", 123, {
  setup_sects: [0, 1],
  root_flags: [1, 2],
  syssize: [3, 4],
  ram_size: [7, 2],
  vid_mode: [9, 2],
  root_dev: [11, 2],
  boot_flag: [13, 2],
  jump: [15, 2],
  header: [17, 4],
  version: [21, 2],
  realmode_swtch: [23, 4],
  start_sys_seg: [27, 2],
  kernel_version: [29, 2],
  type_of_loader: [31, 1],
  loadflags: [32, 1],
  setup_move_size: [33, 2],
  code32_start: [35, 4],
  ramdisk_image: [39, 4],
  ramdisk_size: [43, 4],
  bootsect_kludge: [47, 4],
  heap_end_ptr: [51, 2],
  ext_loader_ver: [53, 1],
  ext_loader_type: [54, 1],
  cmd_line_ptr: [55, 4],
  initrd_addr_max: [59, 4],
  kernel_alignment: [63, 4],
  relocatable_kernel: [67, 1],
  min_alignment: [68, 1],
  xloadflags: [69, 2],
  cmdline_size: [71, 4],
  hardware_subarch: [75, 4],
  hardware_subarch_data: [79, 8],
  payload_offset: [87, 4],
  payload_length: [91, 4],
  setup_data: [95, 8],
  pref_address: [103, 8],
  init_size: [111, 4],
  handover_offset: [115, 4],
  kernel_info_offset: [119, 4],
});

/** struct boot_params (the zero page): the members bunvmm writes, plus the sentinel it must leave 0. */
export const BOOT_PARAMS_LAYOUT = cLayout("struct boot_params", 4096, {
  acpi_rsdp_addr: [0x070, 8],
  ext_ramdisk_image: [0x0c0, 4],
  ext_ramdisk_size: [0x0c4, 4],
  ext_cmd_line_ptr: [0x0c8, 4],
  e820_entries: [0x1e8, 1],
  sentinel: [0x1ef, 1],
  hdr: [0x1f1, 123],
  e820_table: [0x2d0, 2560],
});

/** struct boot_e820_entry, packed: 20 bytes each in e820_table. */
export const BOOT_E820_ENTRY_LAYOUT = cLayout("struct boot_e820_entry", 20, {
  addr: [0, 8],
  size: [8, 8],
  type: [16, 4],
});

/** The setup header's offset in a bzImage file and in the zero page. */
export const SETUP_HEADER_OFFSET = BOOT_PARAMS_LAYOUT.fields.hdr.offset;
/** The zero page reserves [0x1f1, 0x290) for the setup header; later members start at 0x290. */
export const SETUP_HEADER_AREA_END = 0x290;

/** "HdrS" read as a little-endian u32 (setup_header.header). */
export const SETUP_HEADER_MAGIC = 0x5372_6448;
/** setup_header.boot_flag. */
export const BOOT_FLAG_MAGIC = 0xaa55;

/** setup_header.loadflags (<asm/bootparam.h>). */
export const LOADED_HIGH = 1 << 0;
export const KASLR_FLAG = 1 << 1;
export const QUIET_FLAG = 1 << 5;
export const KEEP_SEGMENTS = 1 << 6;
export const CAN_USE_HEAP = 1 << 7;

/** setup_header.xloadflags (<asm/bootparam.h>). */
export const XLF_KERNEL_64 = 1 << 0;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1;

/** type_of_loader 0xff: "undefined" boot loader (boot.rst, type_of_loader). */
export const LOADER_TYPE_UNDEFINED = 0xff;
/** vid_mode 0xffff: "normal" VGA text mode (boot.rst, vid_mode). */
export const VID_MODE_NORMAL = 0xffff;
/** heap_end_ptr: end of the real-mode setup heap, as an offset from the setup code (boot.rst's 0xfe00). */
export const HEAP_END_PTR = 0xfe00;
/** hardware_subarch 0: a standard PC (X86_SUBARCH_PC in <asm/bootparam.h>). */
export const X86_SUBARCH_PC = 0;

export interface ZeroPageOptions {
  /** The image's own setup header bytes, from 0x1f1 to the header's end (parseBzImage's `setupHeader`). */
  readonly setupHeader: Uint8Array;
  readonly cmdlineAddress: number;
  readonly initramfs?: { readonly address: number; readonly size: number };
  /** Physical address of the ACPI RSDP; 0 or absent lets the kernel scan the BIOS area for it. */
  readonly rsdpAddress?: number;
  readonly e820: readonly E820Entry[];
}

const HDR = SETUP_HEADER_LAYOUT.fields;
const BP = BOOT_PARAMS_LAYOUT.fields;
const TWO_POW_32 = 2 ** 32;

/**
 * The 4 KiB zero page for the 64-bit entry: zeroed, the kernel's own setup header copied in (so the
 * kernel sees its header), then the fields a loader must or may set (boot.rst, "DETAILED HEADER
 * FIELDS", the "write" ones): vid_mode, type_of_loader, loadflags (CAN_USE_HEAP | LOADED_HIGH),
 * heap_end_ptr, cmd_line_ptr, ramdisk_image/size with their ext_ high halves, hardware_subarch,
 * acpi_rsdp_addr, and the e820 table. The sentinel at 0x1ef stays 0: the header copy starts at 0x1f1.
 * @throws {LinuxBootError} when the e820 table has more entries than the zero page holds.
 */
export function buildZeroPage(opts: ZeroPageOptions): Uint8Array {
  if (opts.e820.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new LinuxBootError(
      `the memory map has ${opts.e820.length} entries; the zero page holds ${E820_MAX_ENTRIES_ZEROPAGE}`,
    );
  }
  const page = new Uint8Array(BOOT_PARAMS_LAYOUT.size);
  const hdrBytes = opts.setupHeader.subarray(0, SETUP_HEADER_AREA_END - SETUP_HEADER_OFFSET);
  page.set(hdrBytes, SETUP_HEADER_OFFSET);
  const v = viewOf(page);
  const hdr = SETUP_HEADER_OFFSET;
  setField(v, hdr, HDR.vid_mode, VID_MODE_NORMAL);
  setField(v, hdr, HDR.type_of_loader, LOADER_TYPE_UNDEFINED);
  setField(v, hdr, HDR.loadflags, v.getUint8(hdr + HDR.loadflags.offset) | LOADED_HIGH | CAN_USE_HEAP);
  setField(v, hdr, HDR.heap_end_ptr, HEAP_END_PTR);
  setField(v, hdr, HDR.cmd_line_ptr, opts.cmdlineAddress % TWO_POW_32);
  setField(v, 0, BP.ext_cmd_line_ptr, Math.floor(opts.cmdlineAddress / TWO_POW_32));
  const initrd = opts.initramfs ?? { address: 0, size: 0 };
  setField(v, hdr, HDR.ramdisk_image, initrd.address % TWO_POW_32);
  setField(v, 0, BP.ext_ramdisk_image, Math.floor(initrd.address / TWO_POW_32));
  setField(v, hdr, HDR.ramdisk_size, initrd.size % TWO_POW_32);
  setField(v, 0, BP.ext_ramdisk_size, Math.floor(initrd.size / TWO_POW_32));
  setField(v, hdr, HDR.hardware_subarch, X86_SUBARCH_PC);
  setField(v, hdr, HDR.hardware_subarch_data, 0);
  setField(v, 0, BP.acpi_rsdp_addr, opts.rsdpAddress ?? 0);
  setField(v, 0, BP.e820_entries, opts.e820.length);
  const E = BOOT_E820_ENTRY_LAYOUT;
  opts.e820.forEach((e, i) => {
    const at = BP.e820_table.offset + i * E.size;
    setField(v, at, E.fields.addr, e.addr);
    setField(v, at, E.fields.size, e.size);
    setField(v, at, E.fields.type, e.type);
  });
  return page;
}
