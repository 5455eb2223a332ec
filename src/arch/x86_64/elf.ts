/**
 * Just enough ELF64 (System V gABI, "ELF Header", "Program Header", "Sections", "Note Section") to
 * boot an x86_64 vmlinux: the header, the program headers and the notes. Layouts are named offsets
 * checked against <elf.h> by test/arch/x86_64/elf.test.ts.
 */

import { hex } from "../../numbers.ts";
import { LinuxBootError } from "./boot-error.ts";
import { cLayout, type Field, getField, viewOf } from "./struct-layout.ts";

export const ELF64_EHDR_LAYOUT = cLayout("Elf64_Ehdr", 64, {
  e_ident: [0, 16],
  e_type: [16, 2],
  e_machine: [18, 2],
  e_version: [20, 4],
  e_entry: [24, 8],
  e_phoff: [32, 8],
  e_shoff: [40, 8],
  e_flags: [48, 4],
  e_ehsize: [52, 2],
  e_phentsize: [54, 2],
  e_phnum: [56, 2],
  e_shentsize: [58, 2],
  e_shnum: [60, 2],
  e_shstrndx: [62, 2],
});

export const ELF64_PHDR_LAYOUT = cLayout("Elf64_Phdr", 56, {
  p_type: [0, 4],
  p_flags: [4, 4],
  p_offset: [8, 8],
  p_vaddr: [16, 8],
  p_paddr: [24, 8],
  p_filesz: [32, 8],
  p_memsz: [40, 8],
  p_align: [48, 8],
});

export const ELF64_SHDR_LAYOUT = cLayout("Elf64_Shdr", 64, {
  sh_name: [0, 4],
  sh_type: [4, 4],
  sh_flags: [8, 8],
  sh_addr: [16, 8],
  sh_offset: [24, 8],
  sh_size: [32, 8],
  sh_link: [40, 4],
  sh_info: [44, 4],
  sh_addralign: [48, 8],
  sh_entsize: [56, 8],
});

export const ELF64_NHDR_LAYOUT = cLayout("Elf64_Nhdr", 12, {
  n_namesz: [0, 4],
  n_descsz: [4, 4],
  n_type: [8, 4],
});

/** e_ident indices and values (<elf.h>). */
export const EI_CLASS = 4;
export const EI_DATA = 5;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const; // "\x7fELF"
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const SHT_NOTE = 7;

export interface ElfSegment {
  readonly type: number;
  readonly offset: number;
  readonly paddr: number;
  readonly filesz: number;
  readonly memsz: number;
}

export interface ElfNote {
  readonly name: string;
  readonly type: number;
  readonly desc: Uint8Array;
}

/** A checked ELF64 image; `bytes` is the file, segments' offsets index into it. */
export interface Elf64 {
  readonly bytes: Uint8Array;
  /** e_entry: a virtual address in a vmlinux, so a bigint (PVH boots use the note's entry instead). */
  readonly entry: bigint;
  readonly segments: readonly ElfSegment[];
  /** Notes from PT_NOTE segments, or from SHT_NOTE sections when there is no PT_NOTE segment. */
  readonly notes: readonly ElfNote[];
}

const EH = ELF64_EHDR_LAYOUT.fields;
const PH = ELF64_PHDR_LAYOUT.fields;
const SH = ELF64_SHDR_LAYOUT.fields;
const NH = ELF64_NHDR_LAYOUT.fields;

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** An 8-byte offset, address or size that must be a safe number (nothing a VM can hold is larger). */
function u64(v: DataView, at: number, field: Field, what: string): number {
  const n = v.getBigUint64(at + field.offset, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER))
    throw new LinuxBootError(`${what} is 0x${n.toString(16)}, beyond any guest address`);
  return Number(n);
}

function checkRange(what: string, offset: number, size: number, fileSize: number): void {
  if (offset + size > fileSize) {
    throw new LinuxBootError(
      `truncated: ${what} [${hex(offset)}, ${hex(offset + size)}) lies past the end of the ${fileSize}-byte file`,
    );
  }
}

/** The notes in [offset, offset + size) of the file (4-byte aligned name and descriptor, as x86_64 writes). */
function parseNotes(bytes: Uint8Array, offset: number, size: number): ElfNote[] {
  const v = viewOf(bytes);
  const notes: ElfNote[] = [];
  let at = offset;
  const end = offset + size;
  while (at + ELF64_NHDR_LAYOUT.size <= end) {
    const namesz = getField(v, at, NH.n_namesz);
    const descsz = getField(v, at, NH.n_descsz);
    const type = getField(v, at, NH.n_type);
    const nameAt = at + ELF64_NHDR_LAYOUT.size;
    const descAt = nameAt + align4(namesz);
    if (descAt + descsz > end)
      throw new LinuxBootError(`malformed ELF note at ${hex(at)}: it runs past its note area`);
    // The name is NUL-terminated within namesz.
    const raw = bytes.subarray(nameAt, nameAt + namesz);
    const nul = raw.indexOf(0);
    notes.push({
      name: new TextDecoder().decode(nul >= 0 ? raw.subarray(0, nul) : raw),
      type,
      desc: bytes.subarray(descAt, descAt + descsz),
    });
    at = descAt + align4(descsz);
  }
  return notes;
}

/**
 * Parses an ELF64 little-endian x86_64 file's header, program headers and notes.
 * @throws {LinuxBootError} for a file that is not ELF, is 32-bit, big-endian or for another machine,
 * or whose headers or segments run past its end.
 */
export function parseElf64(bytes: Uint8Array): Elf64 {
  if (bytes.length < ELF64_EHDR_LAYOUT.size || !ELF_MAGIC.every((b, i) => bytes[i] === b)) {
    throw new LinuxBootError("not an ELF file: no \\x7fELF magic at 0");
  }
  if (bytes[EI_CLASS] !== ELFCLASS64) {
    throw new LinuxBootError(
      `ELF class ${bytes[EI_CLASS]} is not supported: bunvmm boots 64-bit (ELFCLASS64) vmlinux files`,
    );
  }
  if (bytes[EI_DATA] !== ELFDATA2LSB) throw new LinuxBootError("a big-endian ELF cannot be an x86_64 kernel");
  const v = viewOf(bytes);
  const machine = getField(v, 0, EH.e_machine);
  if (machine !== EM_X86_64) throw new LinuxBootError(`ELF machine ${machine} is not x86_64 (${EM_X86_64})`);

  const phoff = u64(v, 0, EH.e_phoff, "e_phoff");
  const phnum = getField(v, 0, EH.e_phnum);
  const phentsize = getField(v, 0, EH.e_phentsize);
  if (phnum > 0 && phentsize !== ELF64_PHDR_LAYOUT.size) {
    throw new LinuxBootError(
      `ELF program headers are ${phentsize} bytes each, expected ${ELF64_PHDR_LAYOUT.size}`,
    );
  }
  checkRange("the program header table", phoff, phnum * phentsize, bytes.length);
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const s: ElfSegment = {
      type: getField(v, at, PH.p_type),
      offset: u64(v, at, PH.p_offset, `segment ${i}'s p_offset`),
      paddr: u64(v, at, PH.p_paddr, `segment ${i}'s p_paddr`),
      filesz: u64(v, at, PH.p_filesz, `segment ${i}'s p_filesz`),
      memsz: u64(v, at, PH.p_memsz, `segment ${i}'s p_memsz`),
    };
    if (s.type === PT_LOAD || s.type === PT_NOTE)
      checkRange(`segment ${i}`, s.offset, s.filesz, bytes.length);
    if (s.type === PT_LOAD && s.filesz > s.memsz) {
      throw new LinuxBootError(
        `segment ${i} has more file bytes (${s.filesz}) than memory bytes (${s.memsz})`,
      );
    }
    segments.push(s);
  }

  let notes = segments
    .filter((s) => s.type === PT_NOTE)
    .flatMap((s) => parseNotes(bytes, s.offset, s.filesz));
  if (!segments.some((s) => s.type === PT_NOTE)) notes = sectionNotes(bytes, v);
  return { bytes, entry: v.getBigUint64(EH.e_entry.offset, true), segments, notes };
}

function sectionNotes(bytes: Uint8Array, v: DataView): ElfNote[] {
  const shoff = u64(v, 0, EH.e_shoff, "e_shoff");
  const shnum = getField(v, 0, EH.e_shnum);
  const shentsize = getField(v, 0, EH.e_shentsize);
  if (shoff === 0 || shnum === 0) return [];
  if (shentsize !== ELF64_SHDR_LAYOUT.size) {
    throw new LinuxBootError(
      `ELF section headers are ${shentsize} bytes each, expected ${ELF64_SHDR_LAYOUT.size}`,
    );
  }
  checkRange("the section header table", shoff, shnum * shentsize, bytes.length);
  const notes: ElfNote[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    if (getField(v, at, SH.sh_type) !== SHT_NOTE) continue;
    const offset = u64(v, at, SH.sh_offset, `section ${i}'s sh_offset`);
    const size = u64(v, at, SH.sh_size, `section ${i}'s sh_size`);
    checkRange(`note section ${i}`, offset, size, bytes.length);
    notes.push(...parseNotes(bytes, offset, size));
  }
  return notes;
}
