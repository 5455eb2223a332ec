/**
 * How bunvmm declares a C struct's byte layout, once, as named offsets with sizes: the KVM structs
 * (ffi/kvm-structs.ts), glibc's (ffi/libc-structs.ts), virtio's (ffi/virtio-layouts.ts) and the boot
 * protocols' (src/arch/x86_64). Keys are C member paths (`"io.port"` is `kvm_run.io.port`) and `cType`
 * is the full C type, so one test helper (test/helpers/c-layout.ts) can have gcc print `offsetof` and
 * `sizeof` for every field and compare. A size of 0 marks a flexible array member (only its offset is
 * checked).
 */
export interface Field {
  readonly offset: number;
  readonly size: number;
}

export interface CLayout<K extends string = string> {
  /** The C type as a C program spells it: `struct kvm_run`, `Elf64_Phdr`. */
  readonly cType: string;
  readonly size: number;
  readonly fields: { readonly [P in K]: Field };
}

/** Declares a layout from `[offset, size]` pairs keyed by C member path. */
export function cLayout<const K extends string>(
  cType: string,
  size: number,
  fields: { readonly [P in K]: readonly [offset: number, size: number] },
): CLayout<K> {
  const out = {} as { [P in K]: Field };
  for (const key of Object.keys(fields) as K[]) {
    const [offset, fieldSize] = fields[key];
    out[key] = { offset, size: fieldSize };
  }
  return { cType, size, fields: out };
}
