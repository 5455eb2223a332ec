/**
 * Tiny, well-formed kernels built byte by byte through the same named layouts the loader reads: a
 * bzImage whose protected-mode part holds test code at +0x200, and an ELF64 vmlinux with one PT_LOAD
 * segment and a PVH note. Each test breaks one field to reach one error path.
 */
import {
  LOADED_HIGH,
  SETUP_HEADER_LAYOUT,
  SETUP_HEADER_OFFSET,
  XLF_KERNEL_64,
} from "../../src/arch/x86_64/boot-params.ts";
import {
  ELF64_EHDR_LAYOUT,
  ELF64_NHDR_LAYOUT,
  ELF64_PHDR_LAYOUT,
  ELF64_SHDR_LAYOUT,
  EM_X86_64,
  PT_LOAD,
  PT_NOTE,
  SHT_NOTE,
} from "../../src/arch/x86_64/elf.ts";
import { XEN_ELFNOTE_PHYS32_ENTRY } from "../../src/arch/x86_64/pvh.ts";
import { setField, viewOf } from "../../src/arch/x86_64/struct-layout.ts";

type HeaderField = keyof typeof SETUP_HEADER_LAYOUT.fields;

export interface BzImageSpec {
  /** The protected-mode kernel; code at offset 0x200 runs at the 64-bit entry. */
  kernel?: Uint8Array;
  /** Setup-header fields to set after the defaults. */
  header?: Partial<Record<HeaderField, number>>;
}

const SETUP_SECTS = 1;
const SETUP_SIZE = (SETUP_SECTS + 1) * 512;

/** A bzImage (protocol 2.15, 64-bit entry, loaded high, relocatable, pref_address 16 MiB). */
export function craftBzImage(spec: BzImageSpec = {}): Uint8Array {
  const kernel = spec.kernel ?? new Uint8Array(0x1000);
  const paddedKernel = Math.ceil(kernel.length / 16) * 16;
  const image = new Uint8Array(SETUP_SIZE + paddedKernel);
  image.set(kernel, SETUP_SIZE);
  const v = viewOf(image);
  const headerEnd = SETUP_HEADER_OFFSET + SETUP_HEADER_LAYOUT.size;
  const fields: Partial<Record<HeaderField, number>> = {
    setup_sects: SETUP_SECTS,
    syssize: paddedKernel / 16,
    boot_flag: 0xaa55,
    jump: 0xeb | ((headerEnd - 0x202) << 8), // jmp short over the header: its end is 0x202 + disp8
    header: 0x5372_6448,
    version: 0x020f,
    loadflags: LOADED_HIGH,
    kernel_alignment: 0x20_0000,
    relocatable_kernel: 1,
    xloadflags: XLF_KERNEL_64,
    cmdline_size: 2047,
    initrd_addr_max: 0x7fff_ffff,
    pref_address: 0x100_0000,
    init_size: 0x40_0000,
    ...spec.header,
  };
  for (const [name, value] of Object.entries(fields) as [HeaderField, number][]) {
    setField(v, SETUP_HEADER_OFFSET, SETUP_HEADER_LAYOUT.fields[name], value);
  }
  return image;
}

export interface ElfSpec {
  /** The one PT_LOAD segment's bytes and physical address. */
  code?: Uint8Array;
  paddr?: number;
  /** Extra zeroed bytes after the code (p_memsz − p_filesz). */
  bss?: number;
  /** The PVH entry (8-byte descriptor); null for no Xen note at all. */
  pvhEntry?: number | null;
  /** ELF class byte (2 = 64-bit). */
  elfClass?: number;
  /** Where the note is described: a PT_NOTE segment (default) or only an SHT_NOTE section. */
  noteIn?: "segment" | "section";
}

/**
 * An x86_64 ELF64 executable: header, program headers (PT_LOAD, then PT_NOTE), the note, the code; with
 * `noteIn: "section"` the note is found only through a section header table (null + SHT_NOTE) at the end.
 */
export function craftElf(spec: ElfSpec = {}): Uint8Array {
  const code = spec.code ?? new Uint8Array(0x100);
  const paddr = spec.paddr ?? 0x100_0000;
  const EH = ELF64_EHDR_LAYOUT;
  const PH = ELF64_PHDR_LAYOUT;
  const NH = ELF64_NHDR_LAYOUT;
  const withNote = spec.pvhEntry !== null;
  const noteSegment = withNote && spec.noteIn !== "section";
  const phnum = noteSegment ? 2 : 1;
  const noteAt = EH.size + phnum * PH.size;
  const noteSize = withNote ? NH.size + 4 + 8 : 0; // "Xen\0" then an 8-byte descriptor
  const codeAt = Math.ceil((noteAt + noteSize) / 16) * 16;
  const SH = ELF64_SHDR_LAYOUT;
  const shoff = Math.ceil((codeAt + code.length) / 8) * 8;
  const sections = withNote && !noteSegment;
  const file = new Uint8Array(sections ? shoff + 2 * SH.size : codeAt + code.length);
  const v = viewOf(file);
  file.set([0x7f, 0x45, 0x4c, 0x46, spec.elfClass ?? 2, 1, 1]);
  setField(v, 0, EH.fields.e_type, 2); // ET_EXEC
  setField(v, 0, EH.fields.e_machine, EM_X86_64);
  setField(v, 0, EH.fields.e_version, 1);
  setField(v, 0, EH.fields.e_entry, paddr);
  setField(v, 0, EH.fields.e_phoff, EH.size);
  setField(v, 0, EH.fields.e_ehsize, EH.size);
  setField(v, 0, EH.fields.e_phentsize, PH.size);
  setField(v, 0, EH.fields.e_phnum, phnum);
  const load = EH.size;
  setField(v, load, PH.fields.p_type, PT_LOAD);
  setField(v, load, PH.fields.p_offset, codeAt);
  setField(v, load, PH.fields.p_paddr, paddr);
  setField(v, load, PH.fields.p_filesz, code.length);
  setField(v, load, PH.fields.p_memsz, code.length + (spec.bss ?? 0));
  if (noteSegment) {
    const note = EH.size + PH.size;
    setField(v, note, PH.fields.p_type, PT_NOTE);
    setField(v, note, PH.fields.p_offset, noteAt);
    setField(v, note, PH.fields.p_filesz, noteSize);
  }
  if (sections) {
    setField(v, 0, EH.fields.e_shoff, shoff);
    setField(v, 0, EH.fields.e_shentsize, SH.size);
    setField(v, 0, EH.fields.e_shnum, 2);
    setField(v, shoff + SH.size, SH.fields.sh_type, SHT_NOTE);
    setField(v, shoff + SH.size, SH.fields.sh_offset, noteAt);
    setField(v, shoff + SH.size, SH.fields.sh_size, noteSize);
  }
  if (withNote) {
    setField(v, noteAt, NH.fields.n_namesz, 4);
    setField(v, noteAt, NH.fields.n_descsz, 8);
    setField(v, noteAt, NH.fields.n_type, XEN_ELFNOTE_PHYS32_ENTRY);
    file.set(new TextEncoder().encode("Xen\0"), noteAt + NH.size);
    v.setBigUint64(noteAt + NH.size + 4, BigInt(spec.pvhEntry ?? paddr), true);
  }
  file.set(code, codeAt);
  return file;
}
