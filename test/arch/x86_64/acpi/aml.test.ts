/**
 * The AML encoder against iasl. Each fixture is the ASL in a comment, the bytes iasl 20200925 produced
 * for it (`iasl -on fixture.asl`, the AML after the 36-byte table header; -on keeps name paths as
 * written, as our encoder does), and the same object built with the typed constructors.
 * One deliberate difference: an End Tag's checksum, where iasl writes 00 ("treated as if the checksum
 * operation succeeded", ACPI 6.5 §6.4.2.9) and we write the real checksum; those lines say so.
 */
import { describe, expect, test } from "bun:test";
import { AcpiError } from "../../../../src/arch/x86_64/acpi/acpi-error.ts";
import {
  acquire,
  add,
  and,
  arg,
  buffer,
  derefOf,
  device,
  eisaId,
  encodeAml,
  FieldAccess,
  FieldLock,
  FieldUpdate,
  field,
  ifThen,
  increment,
  index,
  integer,
  lAnd,
  lEqual,
  lLess,
  lNot,
  local,
  method,
  methodCall,
  mutex,
  name,
  nameSeg,
  nameString,
  notify,
  ONE,
  ONES,
  operationRegion,
  or,
  packageOf,
  RegionSpace,
  release,
  returnValue,
  scope,
  shiftLeft,
  store,
  string,
  subtract,
  toInteger,
  whileDo,
  ZERO,
} from "../../../../src/arch/x86_64/acpi/aml.ts";
import {
  interrupt,
  io,
  memory32Fixed,
  resourceTemplate,
} from "../../../../src/arch/x86_64/acpi/resource-template.ts";
import { hex, toHex } from "../../../helpers/acpica.ts";

const EDGE_HIGH = {
  usage: "ResourceConsumer",
  trigger: "Edge",
  polarity: "ActiveHigh",
  sharing: "Exclusive",
} as const;

describe("AML terms match iasl", () => {
  test("Scope, Device, Name, EISAID, ResourceTemplate with IO and Interrupt", () => {
    /*
     * Scope (\_SB)
     * {
     *     Device (COM1)
     *     {
     *         Name (_HID, EisaId ("PNP0501"))
     *         Name (_UID, Zero)
     *         Name (_CRS, ResourceTemplate ()
     *         {
     *             IO (Decode16, 0x03F8, 0x03F8, 0x01, 0x08)
     *             Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { 4 }
     *         })
     *     }
     * }
     */
    const expected = hex(
      "10 39 5c 5f 53 42 5f 5b 82 31 43 4f 4d 31 08 5f",
      "48 49 44 0c 41 d0 05 01 08 5f 55 49 44 00 08 5f",
      "43 52 53 11 16 0a 13 47 01 f8 03 f8 03 01 08 89",
      "06 00 03 01 04 00 00 00",
      "79 a9 // End Tag: iasl writes 79 00",
    );
    const actual = scope("\\_SB", [
      device("COM1", [
        name("_HID", eisaId("PNP0501")),
        name("_UID", ZERO),
        name("_CRS", resourceTemplate([io(0x3f8, 0x3f8, 0x01, 0x08), interrupt(EDGE_HIGH, [4])])),
      ]),
    ]);
    expect(toHex(encodeAml([actual]))).toBe(toHex(expected));
  });

  test("OperationRegion, Field (access, lock, update, reserved space, long unit), Mutex, Memory32Fixed", () => {
    /*
     * Device (\_SB.PRES)
     * {
     *     Name (_HID, EisaId ("PNP0A06"))
     *     Name (_UID, "CPU Hotplug Controller")
     *     Name (_CRS, ResourceTemplate ()
     *     {
     *         Memory32Fixed (ReadWrite, 0xFE000000, 0x0000000C)
     *     })
     *     OperationRegion (PRST, SystemMemory, 0xFE000000, 0x0C)
     *     Field (PRST, DWordAcc, NoLock, Preserve)
     *     {
     *         CSEL, 32
     *     }
     *     Field (PRST, ByteAcc, Lock, WriteAsZeros)
     *     {
     *         , 32,
     *         CPEN, 1,
     *         CINS, 1,
     *         , 6,
     *         CEJ0, 1
     *     }
     *     Mutex (CPLK, 0x03)
     *     OperationRegion (PMIO, SystemIO, 0x0600, 0x40)
     *     Field (PMIO, AnyAcc, NoLock, WriteAsOnes)
     *     {
     *         SLPC, 8,
     *         BIG, 300
     *     }
     * }
     */
    const expected = hex(
      "5b 82 46 0a 5c 2e 5f 53 42 5f 50 52 45 53 08 5f",
      "48 49 44 0c 41 d0 0a 06 08 5f 55 49 44 0d 43 50",
      "55 20 48 6f 74 70 6c 75 67 20 43 6f 6e 74 72 6f",
      "6c 6c 65 72 00 08 5f 43 52 53 11 11 0a 0e 86 09",
      "00 01 00 00 00 fe 0c 00 00 00",
      "79 ed // End Tag: iasl writes 79 00",
      "5b 80 50 52",
      "53 54 00 0c 00 00 00 fe 0a 0c 5b 81 0b 50 52 53",
      "54 03 43 53 45 4c 20 5b 81 19 50 52 53 54 51 00",
      "20 43 50 45 4e 01 43 49 4e 53 01 00 06 43 45 4a",
      "30 01 5b 01 43 50 4c 4b 03 5b 80 50 4d 49 4f 01",
      "0b 00 06 0a 40 5b 81 11 50 4d 49 4f 20 53 4c 50",
      "43 08 42 49 47 5f 4c 12 // BIG, 300: a two-byte PkgLength",
    );
    const actual = device("\\_SB.PRES", [
      name("_HID", eisaId("PNP0A06")),
      name("_UID", string("CPU Hotplug Controller")),
      name("_CRS", resourceTemplate([memory32Fixed(0xfe00_0000, 0x0c)])),
      operationRegion("PRST", RegionSpace.SystemMemory, 0xfe00_0000, 0x0c),
      field("PRST", { access: FieldAccess.DWord, update: FieldUpdate.Preserve }, [["CSEL", 32]]),
      field("PRST", { access: FieldAccess.Byte, lock: FieldLock.Lock, update: FieldUpdate.WriteAsZeros }, [
        [null, 32],
        ["CPEN", 1],
        ["CINS", 1],
        [null, 6],
        ["CEJ0", 1],
      ]),
      mutex("CPLK", 3),
      operationRegion("PMIO", RegionSpace.SystemIO, 0x600, 0x40),
      field("PMIO", { access: FieldAccess.Any, update: FieldUpdate.WriteAsOnes }, [
        ["SLPC", 8],
        ["BIG", 300],
      ]),
    ]);
    expect(toHex(encodeAml([actual]))).toBe(toHex(expected));
  });

  test("Method (Serialized), Acquire, Release, If/Else, LEqual, LLess, While, Increment, Return", () => {
    /*
     * Mutex (MLCK, 0x00)
     * Method (MTHD, 2, Serialized)
     * {
     *     Acquire (MLCK, 0xFFFF)
     *     Store (Zero, Local1)
     *     If (LEqual (Arg0, One))
     *     {
     *         Store (0x0F, Local0)
     *     }
     *     Else
     *     {
     *         Store (Zero, Local0)
     *     }
     *     While (LLess (Local1, Arg1))
     *     {
     *         Increment (Local1)
     *     }
     *     Release (MLCK)
     *     Return (Local0)
     * }
     */
    const expected = hex(
      "5b 01 4d 4c 43 4b 00 14 2e 4d 54 48 44 0a 5b 23",
      "4d 4c 43 4b ff ff 70 00 61 a0 08 93 68 01 70 0a",
      "0f 60 a1 04 70 00 60 a2 06 95 61 69 75 61 5b 27",
      "4d 4c 43 4b a4 60",
    );
    const actual = [
      mutex("MLCK", 0),
      method(
        "MTHD",
        2,
        [
          acquire("MLCK", 0xffff),
          store(ZERO, local(1)),
          ifThen(lEqual(arg(0), ONE), [store(0x0f, local(0))], [store(ZERO, local(0))]),
          whileDo(lLess(local(1), arg(1)), [increment(local(1))]),
          release("MLCK"),
          returnValue(local(0)),
        ],
        { serialized: true },
      ),
    ];
    expect(toHex(encodeAml(actual))).toBe(toHex(expected));
  });

  test("Add, Subtract, And, Or, ShiftLeft, LAnd, LNot, ToInteger, DerefOf, Index, Notify, Package, calls", () => {
    /*
     * Device (\_SB.PWRB)
     * {
     *     Name (_HID, EisaId ("PNP0C0C"))
     * }
     * Name (PKG, Package () { One, 0x02, "ab" })
     * Method (CALC, 2, NotSerialized, 7)
     * {
     *     Add (Arg0, Arg1, Local0)
     *     Subtract (Local0, One, Local1)
     *     And (Local0, 0x0F, Local2)
     *     Or (Local1, Local2, Local3)
     *     ShiftLeft (One, Arg0, Local4)
     *     Notify (\_SB.PWRB, 0x80)
     *     If (LAnd (LNot (Arg0), Local4))
     *     {
     *         Return (ToInteger (Local3))
     *     }
     *     Return (DerefOf (Index (PKG, One)))
     * }
     * Method (CALL, 0)
     * {
     *     Return (CALC (0x1234, Ones))
     * }
     */
    const expected = hex(
      "5b 82 15 5c 2e 5f 53 42 5f 50 57 52 42 08 5f 48",
      "49 44 0c 41 d0 0c 0c 08 50 4b 47 5f 12 09 03 01",
      "0a 02 0d 61 62 00 14 3b 43 41 4c 43 72 72 68 69",
      "60 74 60 01 61 7b 60 0a 0f 62 7d 61 62 63 79 01",
      "68 64 86 5c 2e 5f 53 42 5f 50 57 52 42 0a 80 a0",
      "09 90 92 68 64 a4 99 63 00 a4 83 88 50 4b 47 5f",
      "01 00 14 0f 43 41 4c 4c 00 a4 43 41 4c 43 0b 34",
      "12 ff",
    );
    const actual = [
      device("\\_SB.PWRB", [name("_HID", eisaId("PNP0C0C"))]),
      name("PKG", packageOf([ONE, 2, string("ab")])),
      method(
        "CALC",
        2,
        [
          add(arg(0), arg(1), local(0)),
          subtract(local(0), ONE, local(1)),
          and(local(0), 0x0f, local(2)),
          or(local(1), local(2), local(3)),
          shiftLeft(ONE, arg(0), local(4)),
          notify("\\_SB.PWRB", 0x80),
          ifThen(lAnd(lNot(arg(0)), local(4)), [returnValue(toInteger(local(3)))]),
          returnValue(derefOf(index(nameString("PKG"), ONE))),
        ],
        { syncLevel: 7 },
      ),
      method("CALL", 0, [returnValue(methodCall("CALC", [0x1234, ONES]))]),
    ];
    expect(toHex(encodeAml(actual))).toBe(toHex(expected));
  });

  test("integers take the shortest encoding; String, EISAID, Buffer, Package, a multi-GSI Interrupt", () => {
    /*
     * Name (INT0, Zero)
     * Name (INT1, One)
     * Name (INTS, Ones)
     * Name (INTB, 0xFF)
     * Name (INTW, 0x0100)
     * Name (INTX, 0xFFFF)
     * Name (INTD, 0x00010000)
     * Name (INTE, 0xFFFFFFFF)
     * Name (INTQ, 0x0000000100000000)
     * Name (STR0, "bunvmm 0.1")
     * Name (EISA, EisaId ("ACP0103"))
     * Name (BUF0, Buffer () { 0x00, 0x08, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00 })
     * Name (\_S5, Package () { 0x05 })
     * Name (RES, ResourceTemplate ()
     * {
     *     Interrupt (ResourceConsumer, Level, ActiveLow, Shared) { 5, 6, 0x1000 }
     * })
     */
    const expected = hex(
      "08 49 4e 54 30 00 08 49 4e 54 31 01 08 49 4e 54",
      "53 ff 08 49 4e 54 42 0a ff 08 49 4e 54 57 0b 00",
      "01 08 49 4e 54 58 0b ff ff 08 49 4e 54 44 0c 00",
      "00 01 00 08 49 4e 54 45 0c ff ff ff ff 08 49 4e",
      "54 51 0e 00 00 00 00 01 00 00 00 08 53 54 52 30",
      "0d 62 75 6e 76 6d 6d 20 30 2e 31 00 08 45 49 53",
      "41 0c 04 70 01 03 08 42 55 46 30 11 0b 0a 08 00",
      "08 01 01 01 00 00 00 08 5c 5f 53 35 5f 12 04 01",
      "0a 05 08 52 45 53 5f 11 16 0a 13 89 0e 00 0d 03",
      "05 00 00 00 06 00 00 00 00 10 00 00",
      "79 c5 // End Tag: iasl writes 79 00",
    );
    const actual = [
      name("INT0", 0),
      name("INT1", 1),
      name("INTS", (1n << 64n) - 1n),
      name("INTB", 0xff),
      name("INTW", 0x100),
      name("INTX", 0xffff),
      name("INTD", 0x1_0000),
      name("INTE", 0xffff_ffff),
      name("INTQ", 0x1_0000_0000),
      name("STR0", string("bunvmm 0.1")),
      name("EISA", eisaId("ACP0103")),
      name("BUF0", buffer([0x00, 0x08, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00])),
      name("\\_S5", packageOf([5])),
      name(
        "RES",
        resourceTemplate([
          interrupt(
            { usage: "ResourceConsumer", trigger: "Level", polarity: "ActiveLow", sharing: "Shared" },
            [5, 6, 0x1000],
          ),
        ]),
      ),
    ];
    expect(toHex(encodeAml(actual))).toBe(toHex(expected));
  });

  test("NameStrings: root, parent prefixes, dual and multi name paths, padding, the root alone", () => {
    /*
     * Device (\ABCD)
     * {
     *     Name (_ADR, Zero)
     *     Device (B)
     *     {
     *         Name (_ADR, Zero)
     *         Device (C)
     *         {
     *             Name (_ADR, Zero)
     *             Name (D, Zero)
     *             Method (M, 0)
     *             {
     *                 Store (^^C.D, Local0)
     *                 Store (\ABCD.B.C.D, Local1)
     *                 Return (Add (Local0, Add (Local1, \ROOT)))
     *             }
     *         }
     *     }
     * }
     * Scope (ABCD.B)
     * {
     *     Name (G, One)
     * }
     * Scope (\)
     * {
     *     Name (ROOT, Zero)
     * }
     */
    const expected = hex(
      "5b 82 44 06 5c 41 42 43 44 08 5f 41 44 52 00 5b",
      "82 45 05 42 5f 5f 5f 08 5f 41 44 52 00 5b 82 47",
      "04 43 5f 5f 5f 08 5f 41 44 52 00 08 44 5f 5f 5f",
      "00 14 34 4d 5f 5f 5f 00 70 5e 5e 2e 43 5f 5f 5f",
      "44 5f 5f 5f 60 70 5c 2f 04 41 42 43 44 42 5f 5f",
      "5f 43 5f 5f 5f 44 5f 5f 5f 61 a4 72 60 72 61 5c",
      "52 4f 4f 54 00 00 10 10 2e 41 42 43 44 42 5f 5f",
      "5f 08 47 5f 5f 5f 01 10 09 5c 00 08 52 4f 4f 54",
      "00",
    );
    const actual = [
      device("\\ABCD", [
        name("_ADR", ZERO),
        device("B", [
          name("_ADR", ZERO),
          device("C", [
            name("_ADR", ZERO),
            name("D", ZERO),
            method("M", 0, [
              store(nameString("^^C.D"), local(0)),
              store(nameString("\\ABCD.B.C.D"), local(1)),
              returnValue(add(local(0), add(local(1), nameString("\\ROOT")))),
            ]),
          ]),
        ]),
      ]),
      scope("ABCD.B", [name("G", ONE)]),
      scope("\\", [name("ROOT", ZERO)]),
    ];
    expect(toHex(encodeAml(actual))).toBe(toHex(expected));
  });
});

describe("PkgLength", () => {
  /*
   * Name (BUFF, Buffer () { 0x5A, ... }) with N bytes: the package body is the BufferSize Integer and the
   * N bytes. iasl's heads (NameOp BUFF BufferOp PkgLength BufferSize) and total lengths for each N:
   */
  test.each([
    [60, "08 42 55 46 46 11 3f 0a 3c", 69, "body 62: one byte, 63"],
    [61, "08 42 55 46 46 11 41 04 0a 3d", 71, "body 63: two bytes, 65"],
    [62, "08 42 55 46 46 11 42 04 0a 3e", 72, "body 64: two bytes, 66"],
    [4090, "08 42 55 46 46 11 4f ff 0b fa 0f", 4101, "body 4093: two bytes, 4095"],
    [4091, "08 42 55 46 46 11 81 00 01 0b fb 0f", 4103, "body 4094: three bytes, 4097"],
    [4092, "08 42 55 46 46 11 82 00 01 0b fc 0f", 4104, "body 4095: three bytes, 4098"],
    [4093, "08 42 55 46 46 11 83 00 01 0b fd 0f", 4105, "body 4096: three bytes, 4099"],
  ])("a %i-byte buffer encodes like iasl (%s)", (size, head, total) => {
    const bytes = encodeAml([name("BUFF", buffer(new Uint8Array(size).fill(0x5a)))]);
    expect(bytes.length).toBe(total);
    expect(toHex(bytes.subarray(0, hex(head).length))).toBe(toHex(hex(head)));
  });

  /*
   * Beyond iasl's patience (a 1 MiB ASL buffer takes minutes), from ACPI 6.5 §20.2.4: the lead byte holds
   * the count of following bytes in bits 6-7 and the low nibble; body 2^20-4 fits three bytes (2^20-1),
   * body 2^20-3 needs four (2^20+1 = 0x100001: lead 0xc1, then 00 00 01).
   */
  test.each([
    [(1 << 20) - 9, "11 8f ff ff 0c f7 ff 0f 00", "body 2^20-4: three bytes"],
    [(1 << 20) - 8, "11 c1 00 00 01 0c f8 ff 0f 00", "body 2^20-3: four bytes"],
  ])("a %i-byte buffer (%s)", (size, head) => {
    const bytes = encodeAml([buffer(new Uint8Array(size))]);
    expect(toHex(bytes.subarray(0, hex(head).length))).toBe(toHex(hex(head)));
  });

  test("Field unit bit counts are raw PkgLengths, sized like iasl sizes them (63 takes two bytes)", () => {
    /*
     * OperationRegion (R, SystemIO, Zero, 0x10)
     * Field (R, AnyAcc, NoLock, Preserve)
     * {
     *     A, 63,
     *     B, 64
     * }
     */
    const expected = hex(
      "5b 80 52 5f 5f 5f 01 00 0a 10",
      "5b 81 12 52 5f 5f 5f 00 41 5f 5f 5f 4f 03 // A, 63: 4f 03 (one byte, 3f, would be valid too)",
      "42 5f 5f 5f 40 04",
    );
    const actual = [
      operationRegion("R", RegionSpace.SystemIO, 0, 0x10),
      field("R", { access: FieldAccess.Any, update: FieldUpdate.Preserve }, [
        ["A", 63],
        ["B", 64],
      ]),
    ];
    expect(toHex(encodeAml(actual))).toBe(toHex(expected));
  });
});

describe("AML construction checks", () => {
  test.each([
    ["", "must be 1 to 4 characters"],
    ["ABCDE", "must be 1 to 4 characters"],
    ["1ABC", "must start with A-Z or _"],
    ["abcd", "must start with A-Z or _"],
    ["AB-C", "may hold only A-Z, 0-9 and _"],
    ["ABc", "may hold only A-Z, 0-9 and _"],
  ])("nameSeg(%p) throws: %s", (seg, reason) => {
    expect(() => nameSeg(seg)).toThrow(reason);
  });

  test.each([
    ["an empty path", "", "is empty"],
    ["\\^ABC", "\\^ABC", "cannot have both \\ and ^ prefixes"],
    ["\\_SB..CPUS", "\\_SB..CPUS", "must be 1 to 4 characters"],
    ["\\_SB.", "\\_SB.", "must be 1 to 4 characters"],
    ["256 segments", `\\${Array.from({ length: 256 }, () => "A").join(".")}`, "has more than 255 segments"],
  ])("nameString(%s) throws", (_label, path, reason) => {
    expect(() => nameString(path)).toThrow(reason);
  });

  test("nameSeg pads short segments with _", () => {
    expect(nameSeg("GED")).toBe("GED_");
    expect(nameSeg("_")).toBe("____");
  });

  test("terms check their names when built, not when encoded", () => {
    expect(() => device("COM 1", [])).toThrow(AcpiError);
    expect(() => method("toolong", 0, [])).toThrow(AcpiError);
    expect(() => store(ZERO, "\\_SB.x")).toThrow(AcpiError);
    expect(() =>
      field("PRST", { access: FieldAccess.Byte, update: FieldUpdate.Preserve }, [["A.B", 1]]),
    ).toThrow(AcpiError);
  });

  test.each([
    ["a negative integer", () => integer(-1)],
    ["an unsafe number", () => integer(2 ** 53)],
    ["a fraction", () => integer(1.5)],
    ["an integer above 64 bits", () => integer(1n << 64n)],
    ["Local8", () => local(8)],
    ["Arg7", () => arg(7)],
    ["a method with 8 arguments", () => method("MTHD", 8, [])],
    ["sync level 16", () => mutex("MUTX", 16)],
    ["a non-ASCII string", () => string("é")],
    ["a lowercase EISAID", () => eisaId("pnp0501")],
    ["a package of 256 elements", () => packageOf(new Array<number>(256).fill(0))],
    [
      "a zero-bit field unit",
      () => field("R", { access: FieldAccess.Any, update: FieldUpdate.Preserve }, [["A", 0]]),
    ],
    ["an Acquire timeout above 0xffff", () => acquire("MUTX", 0x1_0000)],
  ])("%s throws AcpiError", (_what, build) => {
    expect(build).toThrow(AcpiError);
  });

  test("terms are frozen values", () => {
    const t = device("ABCD", [name("_UID", 1)]);
    expect(Object.isFrozen(t)).toBe(true);
    expect(Object.isFrozen(nameString("\\_SB.CPUS"))).toBe(true);
    expect(toHex(encodeAml([t]))).toBe(toHex(encodeAml([t])));
  });
});
