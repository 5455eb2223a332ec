/**
 * A typed AML encoder: ACPI 6.5, chapter 20 "ACPI Machine Language (AML) Specification"
 * (https://uefi.org/specs/ACPI/6.5/20_AML_Specification.html). Every opcode is named below; every term is
 * a small frozen value whose `encode()` writes its bytes; constructors validate names and ranges and throw
 * AcpiError while the table is being built, never later. Only what bunvmm's DSDT needs is here.
 * @module
 */
import { AcpiError } from "./acpi-error.ts";
import { type AmlSink, ByteArraySink, writePackage, writeRawPkgLength } from "./aml-sink.ts";

/** One-byte opcodes, prefixes and special characters (§20.2.2 names, §20.2.3 data, §20.3 opcode table). */
export const AmlOp = {
  ZERO_OP: 0x00,
  ONE_OP: 0x01,
  NAME_OP: 0x08,
  BYTE_PREFIX: 0x0a,
  WORD_PREFIX: 0x0b,
  DWORD_PREFIX: 0x0c,
  STRING_PREFIX: 0x0d,
  QWORD_PREFIX: 0x0e,
  SCOPE_OP: 0x10,
  BUFFER_OP: 0x11,
  PACKAGE_OP: 0x12,
  METHOD_OP: 0x14,
  DUAL_NAME_PREFIX: 0x2e,
  MULTI_NAME_PREFIX: 0x2f,
  EXT_OP_PREFIX: 0x5b,
  ROOT_CHAR: 0x5c,
  PARENT_PREFIX_CHAR: 0x5e,
  NULL_NAME: 0x00,
  NULL_CHAR: 0x00,
  LOCAL0_OP: 0x60,
  ARG0_OP: 0x68,
  STORE_OP: 0x70,
  ADD_OP: 0x72,
  SUBTRACT_OP: 0x74,
  INCREMENT_OP: 0x75,
  SHIFT_LEFT_OP: 0x79,
  AND_OP: 0x7b,
  OR_OP: 0x7d,
  DEREF_OF_OP: 0x83,
  NOTIFY_OP: 0x86,
  INDEX_OP: 0x88,
  LAND_OP: 0x90,
  LNOT_OP: 0x92,
  LEQUAL_OP: 0x93,
  LLESS_OP: 0x95,
  TO_INTEGER_OP: 0x99,
  IF_OP: 0xa0,
  ELSE_OP: 0xa1,
  WHILE_OP: 0xa2,
  RETURN_OP: 0xa4,
  ONES_OP: 0xff,
} as const;

/** Extended opcodes: the second byte after AmlOp.EXT_OP_PREFIX (§20.3). */
export const AmlExtOp = {
  MUTEX_OP: 0x01,
  ACQUIRE_OP: 0x23,
  RELEASE_OP: 0x27,
  OP_REGION_OP: 0x80,
  FIELD_OP: 0x81,
  DEVICE_OP: 0x82,
} as const;

/** Anything that can be written as AML: a term, a name, a whole term list. */
export interface Aml {
  encode(out: AmlSink): void;
}

/** A term that names storage (§20.2.5.4 SuperName: a name, LocalN, ArgN, DerefOf or Index). */
export interface SuperNameTerm extends Aml {
  readonly kind: "superName";
}

/** A SuperName, or a path string parsed (and checked) at once as a NameString. */
export type SuperName = SuperNameTerm | string;

/** An operand (§20.2.5.4 TermArg): a term, or an integer written as the shortest Integer encoding. */
export type TermArg = Aml | number | bigint;

function term(encode: (out: AmlSink) => void): Aml {
  return Object.freeze({ encode });
}

function superNameTerm(encode: (out: AmlSink) => void): SuperNameTerm {
  return Object.freeze({ kind: "superName" as const, encode });
}

function extOp(out: AmlSink, op: number): void {
  out.byte(AmlOp.EXT_OP_PREFIX);
  out.byte(op);
}

function checkRange(what: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new AcpiError(what, value, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

// --- Names (§20.2.2) ---------------------------------------------------------------------------------

const NAME_SEG_LENGTH = 4;
const NAME_SEG_PAD = "_";
const LEAD_NAME_CHAR = /^[A-Z_]$/;
const NAME_CHAR = /^[A-Z0-9_]$/;
const MAX_MULTI_NAME_SEGS = 0xff;
const PATH_SEPARATOR = ".";
const ROOT_PREFIX = "\\";
const PARENT_PREFIX = "^";

/** Checks one ASL name segment and pads it to the 4-character NameSeg ("GED" becomes "GED_"). */
export function nameSeg(seg: string): string {
  if (seg.length === 0 || seg.length > NAME_SEG_LENGTH) {
    throw new AcpiError("AML NameSeg", seg, `must be 1 to ${NAME_SEG_LENGTH} characters`);
  }
  if (!LEAD_NAME_CHAR.test(seg.charAt(0)))
    throw new AcpiError("AML NameSeg", seg, "must start with A-Z or _");
  for (const c of seg.slice(1)) {
    if (!NAME_CHAR.test(c)) throw new AcpiError("AML NameSeg", seg, "may hold only A-Z, 0-9 and _");
  }
  return seg.padEnd(NAME_SEG_LENGTH, NAME_SEG_PAD);
}

/** A checked NameString (§20.2.2): `\` root or `^` parent prefixes, then 0 to 255 dotted NameSegs. */
export class NameString implements SuperNameTerm {
  readonly kind = "superName" as const;
  readonly root: boolean;
  readonly parents: number;
  readonly segs: readonly string[];

  /** Parses an ASL path such as `\_SB.CPUS.CSCN`, `^PRES.CSEL`, `GED` or `\`; throws AcpiError if invalid. */
  constructor(readonly path: string) {
    let rest = path;
    this.root = rest.startsWith(ROOT_PREFIX);
    if (this.root) rest = rest.slice(ROOT_PREFIX.length);
    let parents = 0;
    while (rest.startsWith(PARENT_PREFIX)) {
      parents++;
      rest = rest.slice(PARENT_PREFIX.length);
    }
    if (this.root && parents > 0)
      throw new AcpiError("AML NameString", path, "cannot have both \\ and ^ prefixes");
    if (rest === "" && !this.root && parents === 0) throw new AcpiError("AML NameString", path, "is empty");
    this.parents = parents;
    this.segs = Object.freeze(rest === "" ? [] : rest.split(PATH_SEPARATOR).map(nameSeg));
    if (this.segs.length > MAX_MULTI_NAME_SEGS) {
      throw new AcpiError("AML NameString", path, `has more than ${MAX_MULTI_NAME_SEGS} segments`);
    }
    Object.freeze(this);
  }

  encode(out: AmlSink): void {
    if (this.root) out.byte(AmlOp.ROOT_CHAR);
    for (let i = 0; i < this.parents; i++) out.byte(AmlOp.PARENT_PREFIX_CHAR);
    if (this.segs.length === 0) out.byte(AmlOp.NULL_NAME);
    else if (this.segs.length === 2) out.byte(AmlOp.DUAL_NAME_PREFIX);
    else if (this.segs.length > 2) {
      out.byte(AmlOp.MULTI_NAME_PREFIX);
      out.byte(this.segs.length);
    }
    for (const seg of this.segs) for (let i = 0; i < NAME_SEG_LENGTH; i++) out.byte(seg.charCodeAt(i));
  }
}

/** Parses `path` now, so a bad name throws where the table is built. */
export function nameString(path: string): NameString {
  return new NameString(path);
}

function toSuperName(target: SuperName): SuperNameTerm {
  return typeof target === "string" ? nameString(target) : target;
}

/** A Target operand (§20.2.5.4): a SuperName, or NullName when the result is only returned. */
function encodeTarget(out: AmlSink, target: SuperName | undefined): void {
  if (target === undefined) out.byte(AmlOp.NULL_NAME);
  else toSuperName(target).encode(out);
}

// --- Data objects (§20.2.3) -----------------------------------------------------------------------------

const BYTE_MAX = 0xff;
const WORD_MAX = 0xffff;
const DWORD_MAX = 0xffff_ffff;
const QWORD_MAX = (1n << 64n) - 1n;

/** ZeroOp: the constant 0 in one byte. */
export const ZERO: Aml = term((out) => out.byte(AmlOp.ZERO_OP));
/** OneOp: the constant 1 in one byte. */
export const ONE: Aml = term((out) => out.byte(AmlOp.ONE_OP));
/** OnesOp: all bits set (64-bit in a revision 2 definition block). */
export const ONES: Aml = term((out) => out.byte(AmlOp.ONES_OP));

/** An Integer in its shortest encoding, as iasl writes it: Zero/One/Ones, then Byte/Word/DWord/QWordConst. */
export function integer(value: number | bigint): Aml {
  if (typeof value === "number" && (!Number.isSafeInteger(value) || value < 0)) {
    throw new AcpiError(
      "AML Integer",
      value,
      "must be a non-negative safe integer (use a bigint above 2^53)",
    );
  }
  const v = BigInt(value);
  if (v < 0n || v > QWORD_MAX) throw new AcpiError("AML Integer", value, "must fit in 64 bits");
  if (v === 0n) return ZERO;
  if (v === 1n) return ONE;
  if (v === QWORD_MAX) return ONES;
  const n = Number(v);
  if (v <= BYTE_MAX)
    return term((out) => {
      out.byte(AmlOp.BYTE_PREFIX);
      out.byte(n);
    });
  if (v <= WORD_MAX)
    return term((out) => {
      out.byte(AmlOp.WORD_PREFIX);
      out.word(n);
    });
  if (v <= DWORD_MAX)
    return term((out) => {
      out.byte(AmlOp.DWORD_PREFIX);
      out.dword(n);
    });
  return term((out) => {
    out.byte(AmlOp.QWORD_PREFIX);
    out.qword(v);
  });
}

function toTerm(value: TermArg): Aml {
  return typeof value === "number" || typeof value === "bigint" ? integer(value) : value;
}

const ASCII_MIN = 0x01;
const ASCII_MAX = 0x7f;

/** A String constant (§20.2.3): ASCII 0x01-0x7F, NUL-terminated. */
export function string(text: string): Aml {
  const codes = Array.from(text, (c) => c.charCodeAt(0));
  if (codes.some((c) => c < ASCII_MIN || c > ASCII_MAX))
    throw new AcpiError("AML String", text, "must be ASCII without NUL");
  Object.freeze(codes);
  return term((out) => {
    out.byte(AmlOp.STRING_PREFIX);
    out.bytes(codes);
    out.byte(AmlOp.NULL_CHAR);
  });
}

/** A Buffer (§20.2.5.4 DefBuffer) holding exactly `bytes`, its size as an Integer. */
export function buffer(bytes: ArrayLike<number>): Aml {
  const data = Uint8Array.from(bytes);
  return term((out) => {
    out.byte(AmlOp.BUFFER_OP);
    writePackage(out, (o) => {
      integer(data.length).encode(o);
      o.bytes(data);
    });
  });
}

const PACKAGE_MAX_ELEMENTS = 0xff;

/** A Package (§20.2.5.4 DefPackage) of up to 255 elements; integers are written as Integer constants. */
export function packageOf(elements: readonly TermArg[]): Aml {
  checkRange("AML Package element count", elements.length, 0, PACKAGE_MAX_ELEMENTS);
  const terms = Object.freeze(elements.map(toTerm));
  return term((out) => {
    out.byte(AmlOp.PACKAGE_OP);
    writePackage(out, (o) => {
      o.byte(terms.length);
      for (const t of terms) t.encode(o);
    });
  });
}

const EISA_ID = /^[A-Z]{3}[0-9A-F]{4}$/;
const EISA_LETTER_BITS = 5;
const EISA_LETTER_BASE = 0x40;
const EISA_PRODUCT_DIGITS = 4;

/**
 * EISAID("PNP0501") (ACPI 6.5 §19.6.35): three letters in 5 bits each, then 4 hex digits, stored
 * big-endian in a DWord; written as an Integer like iasl does.
 */
export function eisaId(id: string): Aml {
  if (!EISA_ID.test(id))
    throw new AcpiError("EISAID", id, "must be 3 uppercase letters and 4 uppercase hex digits");
  let vendor = 0;
  for (let i = 0; i < 3; i++) vendor = (vendor << EISA_LETTER_BITS) | (id.charCodeAt(i) - EISA_LETTER_BASE);
  const product = Number.parseInt(id.slice(3), 16);
  const bigEndian = (vendor << (EISA_PRODUCT_DIGITS * 4)) | product;
  const swapped =
    ((bigEndian & 0xff) << 24) |
    ((bigEndian & 0xff00) << 8) |
    ((bigEndian >>> 8) & 0xff00) |
    (bigEndian >>> 24);
  return integer(swapped >>> 0);
}

// --- Arguments and locals (§20.2.6) --------------------------------------------------------------------

const LOCAL_COUNT = 8;
const ARG_COUNT = 7;

/** LocalN (N = 0..7): a method's scratch variable. */
export function local(n: number): SuperNameTerm {
  const op = AmlOp.LOCAL0_OP + checkRange("AML LocalN", n, 0, LOCAL_COUNT - 1);
  return superNameTerm((out) => out.byte(op));
}

/** ArgN (N = 0..6): a method's argument. */
export function arg(n: number): SuperNameTerm {
  const op = AmlOp.ARG0_OP + checkRange("AML ArgN", n, 0, ARG_COUNT - 1);
  return superNameTerm((out) => out.byte(op));
}

// --- Namespace modifiers and named objects (§20.2.5.1, §20.2.5.2) --------------------------------------

function termList(body: readonly Aml[]): readonly Aml[] {
  return Object.freeze([...body]);
}

/** Scope (path) { body }: adds `body` to an existing namespace node, e.g. `\_SB`. */
export function scope(path: string, body: readonly Aml[]): Aml {
  const name = nameString(path);
  const terms = termList(body);
  return term((out) => {
    out.byte(AmlOp.SCOPE_OP);
    writePackage(out, (o) => {
      name.encode(o);
      for (const t of terms) t.encode(o);
    });
  });
}

/** Device (path) { body }: a device node the OS enumerates by its _HID. */
export function device(path: string, body: readonly Aml[]): Aml {
  const name = nameString(path);
  const terms = termList(body);
  return term((out) => {
    extOp(out, AmlExtOp.DEVICE_OP);
    writePackage(out, (o) => {
      name.encode(o);
      for (const t of terms) t.encode(o);
    });
  });
}

/** Name (path, value): a named data object such as _HID, _UID, _CRS, _MAT or _S5. */
export function name(path: string, value: TermArg): Aml {
  const n = nameString(path);
  const v = toTerm(value);
  return term((out) => {
    out.byte(AmlOp.NAME_OP);
    n.encode(out);
    v.encode(out);
  });
}

const METHOD_MAX_ARGS = 7;
const SYNC_LEVEL_MAX = 15;
const METHOD_SERIALIZED = 1 << 3;
const METHOD_SYNC_LEVEL_SHIFT = 4;

/** Method flags beyond the argument count (§20.2.5.2 MethodFlags). */
export interface MethodOptions {
  /** Serialized: one invocation at a time, with an implicit mutex. @default false */
  readonly serialized?: boolean;
  /** SyncLevel of that implicit mutex, 0..15. @default 0 */
  readonly syncLevel?: number;
}

/** Method (path, argCount[, Serialized]) { body }: control-method code the OS interpreter runs. */
export function method(
  path: string,
  argCount: number,
  body: readonly Aml[],
  options: MethodOptions = {},
): Aml {
  const n = nameString(path);
  const flags =
    checkRange("AML Method argument count", argCount, 0, METHOD_MAX_ARGS) |
    (options.serialized ? METHOD_SERIALIZED : 0) |
    (checkRange("AML Method SyncLevel", options.syncLevel ?? 0, 0, SYNC_LEVEL_MAX) <<
      METHOD_SYNC_LEVEL_SHIFT);
  const terms = termList(body);
  return term((out) => {
    out.byte(AmlOp.METHOD_OP);
    writePackage(out, (o) => {
      n.encode(o);
      o.byte(flags);
      for (const t of terms) t.encode(o);
    });
  });
}

/** Mutex (path, syncLevel): a named lock for Acquire/Release. */
export function mutex(path: string, syncLevel: number): Aml {
  const n = nameString(path);
  const level = checkRange("AML Mutex SyncLevel", syncLevel, 0, SYNC_LEVEL_MAX);
  return term((out) => {
    extOp(out, AmlExtOp.MUTEX_OP);
    n.encode(out);
    out.byte(level);
  });
}

/** Operation region address spaces used by bunvmm (ACPI 6.5 §19.6.100, Table 19.28). */
export const RegionSpace = { SystemMemory: 0x00, SystemIO: 0x01 } as const;
/** One of the RegionSpace values. */
export type RegionSpace = (typeof RegionSpace)[keyof typeof RegionSpace];

/** OperationRegion (path, space, offset, length): a window on guest MMIO or ports that Fields carve up. */
export function operationRegion(path: string, space: RegionSpace, offset: TermArg, length: TermArg): Aml {
  const n = nameString(path);
  const o = toTerm(offset);
  const l = toTerm(length);
  return term((out) => {
    extOp(out, AmlExtOp.OP_REGION_OP);
    n.encode(out);
    out.byte(space);
    o.encode(out);
    l.encode(out);
  });
}

/** Field access width (§20.2.5.2 FieldFlags bits 0-3): the size of every guest access through the Field. */
export const FieldAccess = { Any: 0, Byte: 1, Word: 2, DWord: 3, QWord: 4, Buffer: 5 } as const;
/** One of the FieldAccess values. */
export type FieldAccess = (typeof FieldAccess)[keyof typeof FieldAccess];
/** Field lock rule (bit 4): Lock takes the global lock around each access. */
export const FieldLock = { NoLock: 0, Lock: 1 } as const;
/** One of the FieldLock values. */
export type FieldLock = (typeof FieldLock)[keyof typeof FieldLock];
/** Field update rule (bits 5-6): what a partial write puts in the other bits of the access unit. */
export const FieldUpdate = { Preserve: 0, WriteAsOnes: 1, WriteAsZeros: 2 } as const;
/** One of the FieldUpdate values. */
export type FieldUpdate = (typeof FieldUpdate)[keyof typeof FieldUpdate];
const FIELD_LOCK_SHIFT = 4;
const FIELD_UPDATE_SHIFT = 5;

/** A Field's flags. */
export interface FieldFlags {
  readonly access: FieldAccess;
  readonly lock?: FieldLock;
  readonly update: FieldUpdate;
}

/** One Field element: [name, bits] is a named unit, [null, bits] reserved space (ASL `, bits`). */
export type FieldUnit = readonly [name: string | null, bits: number];

/** The largest bit count a 4-byte PkgLength carries when sized like a package (value + 4 < 2^28). */
const FIELD_BITS_MAX = (1 << 28) - 5;
const RESERVED_FIELD = 0x00;

/** Field (region, access, lock, update) { units }: named bit ranges of an OperationRegion, in order. */
export function field(region: string, flags: FieldFlags, units: readonly FieldUnit[]): Aml {
  const r = nameString(region);
  const fieldFlags =
    flags.access |
    ((flags.lock ?? FieldLock.NoLock) << FIELD_LOCK_SHIFT) |
    (flags.update << FIELD_UPDATE_SHIFT);
  const elements = Object.freeze(
    units.map(([unit, bits]) => {
      checkRange(`AML Field unit ${unit ?? "(reserved)"} bit count`, bits, 1, FIELD_BITS_MAX);
      return Object.freeze([unit === null ? null : nameSeg(unit), bits] as const);
    }),
  );
  return term((out) => {
    extOp(out, AmlExtOp.FIELD_OP);
    writePackage(out, (o) => {
      r.encode(o);
      o.byte(fieldFlags);
      for (const [unit, bits] of elements) {
        if (unit === null) o.byte(RESERVED_FIELD);
        else for (let i = 0; i < NAME_SEG_LENGTH; i++) o.byte(unit.charCodeAt(i));
        writeRawPkgLength(o, bits);
      }
    });
  });
}

// --- Statements (§20.2.5.3) -----------------------------------------------------------------------------

function packaged(op: number, head: readonly Aml[], body: readonly Aml[]): (out: AmlSink) => void {
  return (out) => {
    out.byte(op);
    writePackage(out, (o) => {
      for (const t of head) t.encode(o);
      for (const t of body) t.encode(o);
    });
  };
}

/** If (predicate) { body } [Else { orElse }]. */
export function ifThen(predicate: TermArg, body: readonly Aml[], orElse?: readonly Aml[]): Aml {
  const ifPart = packaged(AmlOp.IF_OP, [toTerm(predicate)], termList(body));
  const elsePart = orElse === undefined ? undefined : packaged(AmlOp.ELSE_OP, [], termList(orElse));
  return term((out) => {
    ifPart(out);
    elsePart?.(out);
  });
}

/** While (predicate) { body }. */
export function whileDo(predicate: TermArg, body: readonly Aml[]): Aml {
  return term(packaged(AmlOp.WHILE_OP, [toTerm(predicate)], termList(body)));
}

/** Return (value). */
export function returnValue(value: TermArg): Aml {
  const v = toTerm(value);
  return term((out) => {
    out.byte(AmlOp.RETURN_OP);
    v.encode(out);
  });
}

/** Notify (object, value): tells the OS about a device (1 device check, 3 eject request, 0x80 button). */
export function notify(object: SuperName, value: TermArg): Aml {
  const o = toSuperName(object);
  const v = toTerm(value);
  return term((out) => {
    out.byte(AmlOp.NOTIFY_OP);
    o.encode(out);
    v.encode(out);
  });
}

const ACQUIRE_TIMEOUT_MAX = 0xffff;

/** Acquire (mutex, timeout ms): 0xFFFF waits forever (then iasl does not ask for the result to be checked). */
export function acquire(mutexName: SuperName, timeout: number): Aml {
  const m = toSuperName(mutexName);
  const t = checkRange("AML Acquire timeout", timeout, 0, ACQUIRE_TIMEOUT_MAX);
  return term((out) => {
    extOp(out, AmlExtOp.ACQUIRE_OP);
    m.encode(out);
    out.word(t);
  });
}

/** Release (mutex). */
export function release(mutexName: SuperName): Aml {
  const m = toSuperName(mutexName);
  return term((out) => {
    extOp(out, AmlExtOp.RELEASE_OP);
    m.encode(out);
  });
}

// --- Expressions (§20.2.5.4) ----------------------------------------------------------------------------

/** Store (value, target). */
export function store(value: TermArg, target: SuperName): Aml {
  const v = toTerm(value);
  const t = toSuperName(target);
  return term((out) => {
    out.byte(AmlOp.STORE_OP);
    v.encode(out);
    t.encode(out);
  });
}

function binary(op: number, a: TermArg, b: TermArg, target: SuperName | undefined): Aml {
  const x = toTerm(a);
  const y = toTerm(b);
  const t = target === undefined ? undefined : toSuperName(target);
  return term((out) => {
    out.byte(op);
    x.encode(out);
    y.encode(out);
    encodeTarget(out, t);
  });
}

/** Add (a, b[, target]). */
export const add = (a: TermArg, b: TermArg, target?: SuperName): Aml => binary(AmlOp.ADD_OP, a, b, target);
/** Subtract (a, b[, target]). */
export const subtract = (a: TermArg, b: TermArg, target?: SuperName): Aml =>
  binary(AmlOp.SUBTRACT_OP, a, b, target);
/** And (a, b[, target]): bitwise and, e.g. testing a GED event bit. */
export const and = (a: TermArg, b: TermArg, target?: SuperName): Aml => binary(AmlOp.AND_OP, a, b, target);
/** Or (a, b[, target]): bitwise or. */
export const or = (a: TermArg, b: TermArg, target?: SuperName): Aml => binary(AmlOp.OR_OP, a, b, target);
/** ShiftLeft (a, count[, target]). */
export const shiftLeft = (a: TermArg, count: TermArg, target?: SuperName): Aml =>
  binary(AmlOp.SHIFT_LEFT_OP, a, count, target);

/** Increment (target): target = target + 1. */
export function increment(target: SuperName): Aml {
  const t = toSuperName(target);
  return term((out) => {
    out.byte(AmlOp.INCREMENT_OP);
    t.encode(out);
  });
}

function logical(op: number, operands: readonly TermArg[]): Aml {
  const terms = Object.freeze(operands.map(toTerm));
  return term((out) => {
    out.byte(op);
    for (const t of terms) t.encode(out);
  });
}

/** LEqual (a, b): 1 if equal, else 0. */
export const lEqual = (a: TermArg, b: TermArg): Aml => logical(AmlOp.LEQUAL_OP, [a, b]);
/** LLess (a, b): 1 if a < b, else 0. */
export const lLess = (a: TermArg, b: TermArg): Aml => logical(AmlOp.LLESS_OP, [a, b]);
/** LAnd (a, b): logical and. */
export const lAnd = (a: TermArg, b: TermArg): Aml => logical(AmlOp.LAND_OP, [a, b]);
/** LNot (a): logical not. */
export const lNot = (a: TermArg): Aml => logical(AmlOp.LNOT_OP, [a]);

/** ToInteger (value[, target]): converts a buffer or string operand to an Integer. */
export function toInteger(value: TermArg, target?: SuperName): Aml {
  const v = toTerm(value);
  const t = target === undefined ? undefined : toSuperName(target);
  return term((out) => {
    out.byte(AmlOp.TO_INTEGER_OP);
    v.encode(out);
    encodeTarget(out, t);
  });
}

/** DerefOf (reference): the object a reference (e.g. an Index result) points at. */
export function derefOf(reference: TermArg): SuperNameTerm {
  const r = toTerm(reference);
  return superNameTerm((out) => {
    out.byte(AmlOp.DEREF_OF_OP);
    r.encode(out);
  });
}

/** Index (source, index[, target]): a reference to one element of a buffer, package or string. */
export function index(source: TermArg, at: TermArg, target?: SuperName): SuperNameTerm {
  const s = toTerm(source);
  const i = toTerm(at);
  const t = target === undefined ? undefined : toSuperName(target);
  return superNameTerm((out) => {
    out.byte(AmlOp.INDEX_OP);
    s.encode(out);
    i.encode(out);
    encodeTarget(out, t);
  });
}

/**
 * A method invocation (§20.2.5.4 MethodInvocation): the method's NameString, then its arguments. The
 * arguments are not counted in the bytes, so a reader must know the method: define it in the same table.
 */
export function methodCall(path: string, args: readonly TermArg[] = []): Aml {
  const n = nameString(path);
  checkRange("AML MethodInvocation argument count", args.length, 0, METHOD_MAX_ARGS);
  const terms = Object.freeze(args.map(toTerm));
  return term((out) => {
    n.encode(out);
    for (const t of terms) t.encode(out);
  });
}

/** Encodes terms one after another into a new byte array: a table body or a test's actual bytes. */
export function encodeAml(terms: readonly Aml[]): Uint8Array {
  const sink = new ByteArraySink();
  for (const t of terms) t.encode(sink);
  return sink.toBytes();
}
