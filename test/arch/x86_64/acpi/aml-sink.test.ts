import { describe, expect, test } from "bun:test";
import {
  ByteArraySink,
  ChecksumSink,
  checksumOf,
  writePackage,
} from "../../../../src/arch/x86_64/acpi/aml-sink.ts";
import { toHex } from "../../../helpers/acpica.ts";

describe("AmlSink", () => {
  test("word, dword and qword are little-endian", () => {
    const sink = new ByteArraySink();
    sink.word(0x1234);
    sink.dword(0xfee0_0000);
    sink.qword(0x0102_0304_0506_0708n);
    expect(toHex(sink.toBytes())).toBe("34 12 00 00 e0 fe 08 07 06 05 04 03 02 01");
  });

  test("ByteArraySink grows past its first allocation", () => {
    const sink = new ByteArraySink();
    for (let i = 0; i < 1000; i++) sink.byte(i);
    expect(sink.length).toBe(1000);
    expect(sink.toBytes()[999]).toBe(999 & 0xff);
  });
});

describe("ChecksumSink", () => {
  test("checksum makes the bytes sum to 0 mod 256", () => {
    const data = Uint8Array.from([0x52, 0x53, 0x44, 0x20, 0xff, 0x01]);
    const sum = new ChecksumSink();
    sum.bytes(data);
    expect((data.reduce((a, b) => a + b, 0) + sum.checksum) & 0xff).toBe(0);
    expect(checksumOf(data)).toBe(sum.checksum);
    expect(checksumOf(new Uint8Array(4))).toBe(0);
  });
});

describe("writePackage()", () => {
  // ACPI 6.5 §20.2.4: the length counts its own bytes; 1 byte up to 63, 2 up to 4095, 3 up to 2^20-1.
  test.each([
    [0, "01"],
    [62, "3f"],
    [63, "41 04"],
    [4093, "4f ff"],
    [4094, "81 00 01"],
    [(1 << 20) - 4, "8f ff ff"],
    [(1 << 20) - 3, "c1 00 00 01"],
  ])("a %i-byte body gets PkgLength %s", (size, lead) => {
    const sink = new ByteArraySink();
    writePackage(sink, (o) => o.bytes(new Uint8Array(size)));
    const bytes = sink.toBytes();
    expect(toHex(bytes.subarray(0, lead.split(" ").length))).toBe(lead);
    expect(bytes.length).toBe(size + lead.split(" ").length);
  });
});
