/**
 * ResourceTemplate () { ... } for _CRS: resource data descriptors (ACPI 6.5 §6.4) in an AML Buffer, ended
 * by an End Tag. Only the descriptors bunvmm's devices need: a fixed I/O port range, a fixed 32-bit memory
 * range and an extended interrupt.
 * @module
 */
import { AcpiError } from "./acpi-error.ts";
import { type Aml, buffer } from "./aml.ts";
import { type AmlSink, ByteArraySink, ChecksumSink } from "./aml-sink.ts";

/** One resource data descriptor: it writes its own bytes (type tag, length, fields). */
export interface ResourceDescriptor {
  readonly kind: "resource";
  encode(out: AmlSink): void;
}

function descriptor(encode: (out: AmlSink) => void): ResourceDescriptor {
  return Object.freeze({ kind: "resource" as const, encode });
}

/** Small resource tag byte (§6.4.2): item name in bits 3-6, length in bits 0-2. */
const SMALL_ITEM_NAME_SHIFT = 3;
const smallTag = (itemName: number, length: number): number => (itemName << SMALL_ITEM_NAME_SHIFT) | length;
/** Large resource tag byte (§6.4.3): bit 7 set, item name in bits 0-6; a 16-bit length follows. */
const LARGE_ITEM = 0x80;

// §6.4.2.5 I/O Port Descriptor.
const IO_ITEM_NAME = 0x08;
const IO_LENGTH = 7;
const IO_DECODE_16 = 1 << 0;
// §6.4.2.9 End Tag.
const END_TAG_ITEM_NAME = 0x0f;
const END_TAG_LENGTH = 1;
// §6.4.3.4 32-Bit Fixed Memory Range Descriptor.
const MEMORY32_FIXED_ITEM_NAME = 0x06;
const MEMORY32_FIXED_LENGTH = 9;
const MEMORY_READ_WRITE = 1 << 0;
// §6.4.3.6 Extended Interrupt Descriptor.
const EXTENDED_INTERRUPT_ITEM_NAME = 0x09;
const EXTENDED_INTERRUPT_FIXED_LENGTH = 2;
const INTERRUPT_BYTES = 4;
const INTERRUPT_CONSUMER = 1 << 0;
const INTERRUPT_EDGE = 1 << 1;
const INTERRUPT_ACTIVE_LOW = 1 << 2;
const INTERRUPT_SHARED = 1 << 3;
const INTERRUPT_TABLE_MAX = 0xff;

const WORD_MAX = 0xffff;
const DWORD_MAX = 0xffff_ffff;
const BYTE_MAX = 0xff;

function checkRange(what: string, value: number, max: number, min = 0): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new AcpiError(what, value, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** IO (Decode16, min, max, alignment, length): an I/O port range a device decodes (COM1's 8 ports). */
export function io(min: number, max: number, alignment: number, length: number): ResourceDescriptor {
  checkRange("IO descriptor minimum", min, WORD_MAX);
  checkRange("IO descriptor maximum", max, WORD_MAX, min);
  checkRange("IO descriptor alignment", alignment, BYTE_MAX);
  checkRange("IO descriptor length", length, BYTE_MAX);
  return descriptor((out) => {
    out.byte(smallTag(IO_ITEM_NAME, IO_LENGTH));
    out.byte(IO_DECODE_16);
    out.word(min);
    out.word(max);
    out.byte(alignment);
    out.byte(length);
  });
}

/** Memory32Fixed (ReadWrite, base, length): an MMIO range a device decodes (the hotplug controller's block). */
export function memory32Fixed(base: number, length: number): ResourceDescriptor {
  checkRange("Memory32Fixed base", base, DWORD_MAX);
  checkRange("Memory32Fixed length", length, DWORD_MAX - base);
  return descriptor((out) => {
    out.byte(LARGE_ITEM | MEMORY32_FIXED_ITEM_NAME);
    out.word(MEMORY32_FIXED_LENGTH);
    out.byte(MEMORY_READ_WRITE);
    out.dword(base);
    out.dword(length);
  });
}

/** The four choices of an Interrupt () descriptor, spelled as in ASL. */
export interface InterruptFlags {
  readonly usage: "ResourceConsumer" | "ResourceProducer";
  readonly trigger: "Edge" | "Level";
  readonly polarity: "ActiveHigh" | "ActiveLow";
  readonly sharing: "Exclusive" | "Shared";
}

/** Interrupt (usage, trigger, polarity, sharing) { gsis }: the GSIs a device raises (COM1, the GED). */
export function interrupt(flags: InterruptFlags, gsis: readonly number[]): ResourceDescriptor {
  checkRange("Interrupt descriptor GSI count", gsis.length, INTERRUPT_TABLE_MAX, 1);
  const list = Object.freeze(gsis.map((gsi) => checkRange("Interrupt descriptor GSI", gsi, DWORD_MAX)));
  const bits =
    (flags.usage === "ResourceConsumer" ? INTERRUPT_CONSUMER : 0) |
    (flags.trigger === "Edge" ? INTERRUPT_EDGE : 0) |
    (flags.polarity === "ActiveLow" ? INTERRUPT_ACTIVE_LOW : 0) |
    (flags.sharing === "Shared" ? INTERRUPT_SHARED : 0);
  return descriptor((out) => {
    out.byte(LARGE_ITEM | EXTENDED_INTERRUPT_ITEM_NAME);
    out.word(EXTENDED_INTERRUPT_FIXED_LENGTH + INTERRUPT_BYTES * list.length);
    out.byte(bits);
    out.byte(list.length);
    for (const gsi of list) out.dword(gsi);
  });
}

/**
 * ResourceTemplate () { descriptors }: a Buffer of the descriptors and an End Tag whose checksum makes
 * the descriptors and the tag sum to zero (§6.4.2.9). iasl writes 0 there instead ("treated as if the
 * checksum operation succeeded"); both are valid, and a real checksum is checkable.
 */
export function resourceTemplate(descriptors: readonly ResourceDescriptor[]): Aml {
  const bytes = new ByteArraySink();
  for (const d of descriptors) d.encode(bytes);
  bytes.byte(smallTag(END_TAG_ITEM_NAME, END_TAG_LENGTH));
  const sum = new ChecksumSink();
  sum.bytes(bytes.toBytes());
  bytes.byte(sum.checksum);
  return buffer(bytes.toBytes());
}
