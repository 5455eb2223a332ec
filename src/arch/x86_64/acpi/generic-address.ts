/**
 * The Generic Address Structure (ACPI 6.5 §5.2.3.2): how the FADT names a register (reset, sleep control,
 * sleep status) by address space, width and address.
 * @module
 */
import { LITTLE_ENDIAN } from "./sdt-header.ts";

/** Byte offsets in a GAS (Table 5.1); 12 bytes. */
export const GAS = {
  ADDRESS_SPACE_ID: 0,
  REGISTER_BIT_WIDTH: 1,
  REGISTER_BIT_OFFSET: 2,
  ACCESS_SIZE: 3,
  ADDRESS: 4,
  SIZE: 12,
} as const;

/** Address space ids bunvmm uses (Table 5.1). */
export const GasAddressSpace = { SystemMemory: 0, SystemIO: 1 } as const;
/** One of the GasAddressSpace values. */
export type GasAddressSpace = (typeof GasAddressSpace)[keyof typeof GasAddressSpace];

/** Access sizes (Table 5.1): the width of each access the OS makes. */
export const GasAccessSize = { Undefined: 0, Byte: 1, Word: 2, DWord: 3, QWord: 4 } as const;
/** One of the GasAccessSize values. */
export type GasAccessSize = (typeof GasAccessSize)[keyof typeof GasAccessSize];

/** One register, as the FADT describes it. */
export interface GenericAddress {
  readonly space: GasAddressSpace;
  readonly bitWidth: number;
  readonly bitOffset: number;
  readonly accessSize: GasAccessSize;
  readonly address: number;
}

const BITS_PER_BYTE = 8;

/** An 8-bit I/O port register accessed one byte at a time: the hardware-reduced power registers. */
export function ioPort8(port: number): GenericAddress {
  return {
    space: GasAddressSpace.SystemIO,
    bitWidth: BITS_PER_BYTE,
    bitOffset: 0,
    accessSize: GasAccessSize.Byte,
    address: port,
  };
}

/** Writes `gas` at `offset` of `view`. */
export function writeGas(view: DataView, offset: number, gas: GenericAddress): void {
  view.setUint8(offset + GAS.ADDRESS_SPACE_ID, gas.space);
  view.setUint8(offset + GAS.REGISTER_BIT_WIDTH, gas.bitWidth);
  view.setUint8(offset + GAS.REGISTER_BIT_OFFSET, gas.bitOffset);
  view.setUint8(offset + GAS.ACCESS_SIZE, gas.accessSize);
  view.setBigUint64(offset + GAS.ADDRESS, BigInt(gas.address), LITTLE_ENDIAN);
}
