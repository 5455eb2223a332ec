/**
 * A vCPU's kvm_run area (the mmap of its fd) and the one decoder of what KVM_RUN left there.
 *
 * `exit()` turns the raw exit into a tagged union (`VcpuExit`). The run loop calls it once per exit, so
 * the two hot kinds, `io` and `mmio`, are ONE mutable record each, refilled in place: no allocation on
 * the hot path. Such a record is valid until the next KVM_RUN; copy what you keep. The rare kinds
 * (fail_entry, internal_error, system_event, unknown) are fresh objects. The run loop, the crash report
 * and the test harness all read exits through here; the kvm_run offsets come from ffi/kvm-structs.ts
 * (checked against <linux/kvm.h> by test/ffi/kvm-structs.test.ts).
 *
 * Threads: the VMM thread maps the area (`KvmRun.map`) and may set `immediate_exit` from any thread
 * (the kick); everything else is read and written only by the thread that runs the vCPU, between
 * KVM_RUN calls (KVM owns the area while KVM_RUN runs).
 */
import { toArrayBuffer } from "bun:ffi";
import {
  KVM_EXIT_FAIL_ENTRY,
  KVM_EXIT_HLT,
  KVM_EXIT_INTERNAL_ERROR,
  KVM_EXIT_INTR,
  KVM_EXIT_IO,
  KVM_EXIT_IO_OUT,
  KVM_EXIT_MMIO,
  KVM_EXIT_NAMES,
  KVM_EXIT_SHUTDOWN,
  KVM_EXIT_SYSTEM_EVENT,
  KVM_RUN_LAYOUT,
} from "../../ffi/kvm-structs.ts";
import { errno, libc, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE } from "../../ffi/libc.ts";
import { LibcError } from "../sys/libc-error.ts";

const F = KVM_RUN_LAYOUT.fields;
const EXIT_REASON = F.exit_reason.offset;
const IMMEDIATE_EXIT = F.immediate_exit.offset;
const IO_DIRECTION = F["io.direction"].offset;
const IO_SIZE = F["io.size"].offset;
const IO_PORT = F["io.port"].offset;
const IO_COUNT = F["io.count"].offset;
const IO_DATA_OFFSET = F["io.data_offset"].offset;
const MMIO_PHYS_ADDR = F["mmio.phys_addr"].offset;
const MMIO_DATA = F["mmio.data"].offset;
const MMIO_DATA_SIZE = F["mmio.data"].size;
const MMIO_LEN = F["mmio.len"].offset;
const MMIO_IS_WRITE = F["mmio.is_write"].offset;
const FAIL_ENTRY_REASON = F["fail_entry.hardware_entry_failure_reason"].offset;
const FAIL_ENTRY_CPU = F["fail_entry.cpu"].offset;
const HW_EXIT_REASON = F["hw.hardware_exit_reason"].offset;
const INTERNAL_SUBERROR = F["internal.suberror"].offset;
const INTERNAL_NDATA = F["internal.ndata"].offset;
const INTERNAL_DATA = F["internal.data"].offset;
const INTERNAL_DATA_WORDS = F["internal.data"].size / 8;
const SYSTEM_EVENT_TYPE = F["system_event.type"].offset;
const SYSTEM_EVENT_NDATA = F["system_event.ndata"].offset;
const SYSTEM_EVENT_DATA = F["system_event.data"].offset;
const SYSTEM_EVENT_DATA_WORDS = F["system_event.data"].size / 8;
const TWO_POW_32 = 2 ** 32;

/** KVM_EXIT_IO: `count` items of `size` bytes at `dataOffset` in the kvm_run area (string I/O: count > 1). */
export interface IoExit {
  readonly kind: "io";
  readonly direction: "in" | "out";
  readonly port: number;
  readonly size: 1 | 2 | 4;
  readonly count: number;
  readonly dataOffset: number;
}

/**
 * KVM_EXIT_MMIO: `len` bytes (1, 2, 4 or 8) at guest-physical `gpa`. `data` is a view of the 8 data
 * bytes in the kvm_run area: the value written, or where a read's answer goes (little-endian).
 */
export interface MmioExit {
  readonly kind: "mmio";
  readonly gpa: number;
  readonly len: 1 | 2 | 4 | 8;
  readonly isWrite: boolean;
  readonly data: Uint8Array;
}

/** Everything KVM_RUN can come back with, decoded. */
export type VcpuExit =
  | IoExit
  | MmioExit
  | { readonly kind: "hlt" }
  | { readonly kind: "shutdown" }
  | { readonly kind: "intr" }
  | { readonly kind: "fail_entry"; readonly hardwareReason: bigint; readonly cpu: number }
  | { readonly kind: "internal_error"; readonly suberror: number; readonly data: readonly bigint[] }
  | { readonly kind: "system_event"; readonly type: number; readonly data: readonly bigint[] }
  /** Any other exit reason; `hardwareReason` is kvm_run.hw (meaningful for KVM_EXIT_UNKNOWN). */
  | {
      readonly kind: "unknown";
      readonly reason: number;
      readonly name: string;
      readonly hardwareReason: bigint;
    };

const HLT = Object.freeze({ kind: "hlt" as const });
const SHUTDOWN = Object.freeze({ kind: "shutdown" as const });
const INTR = Object.freeze({ kind: "intr" as const });

type Mutable<T> = { -readonly [P in keyof T]: T[P] };

/** The mapped kvm_run area of one vCPU. */
export class KvmRun {
  /** The whole area, for the kick (`immediate_exit`) and string I/O data. */
  readonly bytes: Uint8Array;
  readonly view: DataView;
  private readonly ioRecord: Mutable<IoExit>;
  private readonly mmioRecord: Mutable<MmioExit>;

  /** Views `size` bytes at host address `address`, a kvm_run mapping made by `map` (maybe in another thread). */
  constructor(
    readonly address: number,
    readonly size: number,
  ) {
    this.bytes = new Uint8Array(toArrayBuffer(address, 0, size));
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.ioRecord = { kind: "io", direction: "in", port: 0, size: 1, count: 0, dataOffset: 0 };
    this.mmioRecord = {
      kind: "mmio",
      gpa: 0,
      len: 1,
      isWrite: false,
      data: this.bytes.subarray(MMIO_DATA, MMIO_DATA + MMIO_DATA_SIZE),
    };
  }

  /** mmap of a vCPU fd's kvm_run area (size from KVM_GET_VCPU_MMAP_SIZE). @throws {LibcError} */
  static map(vcpuFd: number, size: number): KvmRun {
    const addr = libc.mmap(0, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpuFd, 0);
    if (BigInt(addr) === MAP_FAILED) throw new LibcError("mmap of kvm_run", errno());
    return new KvmRun(Number(addr), size);
  }

  /** The raw KVM_EXIT_* number. */
  get exitReason(): number {
    return this.view.getUint32(EXIT_REASON, true);
  }

  /** kvm_run.immediate_exit: 1 makes the next KVM_RUN return EINTR without entering the guest. */
  get immediateExit(): number {
    return this.bytes[IMMEDIATE_EXIT]!;
  }
  set immediateExit(value: number) {
    this.bytes[IMMEDIATE_EXIT] = value;
  }

  /** Decodes the exit KVM_RUN just returned (io and mmio records are reused: valid until the next run). */
  exit(): VcpuExit {
    const v = this.view;
    const reason = v.getUint32(EXIT_REASON, true);
    switch (reason) {
      case KVM_EXIT_IO: {
        const r = this.ioRecord;
        r.direction = this.bytes[IO_DIRECTION] === KVM_EXIT_IO_OUT ? "out" : "in";
        r.size = this.bytes[IO_SIZE] as 1 | 2 | 4;
        r.port = v.getUint16(IO_PORT, true);
        r.count = v.getUint32(IO_COUNT, true);
        r.dataOffset = v.getUint32(IO_DATA_OFFSET, true); // within the mapped area, far below 4 GiB
        return r;
      }
      case KVM_EXIT_MMIO: {
        const r = this.mmioRecord;
        r.gpa = v.getUint32(MMIO_PHYS_ADDR, true) + v.getUint32(MMIO_PHYS_ADDR + 4, true) * TWO_POW_32;
        r.len = v.getUint32(MMIO_LEN, true) as 1 | 2 | 4 | 8;
        r.isWrite = this.bytes[MMIO_IS_WRITE] !== 0;
        return r;
      }
      case KVM_EXIT_HLT:
        return HLT;
      case KVM_EXIT_INTR:
        return INTR;
      case KVM_EXIT_SHUTDOWN:
        return SHUTDOWN;
      case KVM_EXIT_FAIL_ENTRY:
        return {
          kind: "fail_entry",
          hardwareReason: v.getBigUint64(FAIL_ENTRY_REASON, true),
          cpu: v.getUint32(FAIL_ENTRY_CPU, true),
        };
      case KVM_EXIT_INTERNAL_ERROR:
        return {
          kind: "internal_error",
          suberror: v.getUint32(INTERNAL_SUBERROR, true),
          data: this.words(INTERNAL_DATA, v.getUint32(INTERNAL_NDATA, true), INTERNAL_DATA_WORDS),
        };
      case KVM_EXIT_SYSTEM_EVENT:
        return {
          kind: "system_event",
          type: v.getUint32(SYSTEM_EVENT_TYPE, true),
          data: this.words(SYSTEM_EVENT_DATA, v.getUint32(SYSTEM_EVENT_NDATA, true), SYSTEM_EVENT_DATA_WORDS),
        };
      default:
        return {
          kind: "unknown",
          reason,
          name: KVM_EXIT_NAMES[reason] ?? `reason ${reason}`,
          hardwareReason: v.getBigUint64(HW_EXIT_REASON, true),
        };
    }
  }

  /** `n` u64 words at `at`, at most `max` (KVM's ndata can exceed the array it fills). */
  private words(at: number, n: number, max: number): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < Math.min(n, max); i++) out.push(this.view.getBigUint64(at + i * 8, true));
    return out;
  }

  /** The low `len` (1, 2 or 4) bytes of the MMIO data as a number. */
  mmioValue(len: 1 | 2 | 4): number {
    return len === 1
      ? this.bytes[MMIO_DATA]!
      : len === 2
        ? this.view.getUint16(MMIO_DATA, true)
        : this.view.getUint32(MMIO_DATA, true);
  }

  /** All 8 MMIO data bytes as one value. */
  mmioValue64(): bigint {
    return this.view.getBigUint64(MMIO_DATA, true);
  }

  /** Answers an MMIO read of `len` (1, 2 or 4) bytes. */
  setMmioValue(len: 1 | 2 | 4, value: number): void {
    if (len === 1) this.bytes[MMIO_DATA] = value;
    else if (len === 2) this.view.setUint16(MMIO_DATA, value, true);
    else this.view.setUint32(MMIO_DATA, value >>> 0, true);
  }

  /** Answers an 8-byte MMIO read. */
  setMmioValue64(value: bigint): void {
    this.view.setBigUint64(MMIO_DATA, BigInt.asUintN(64, value), true);
  }

  /** Unmaps the area; only the thread that mapped it, once no thread uses it any more. */
  unmap(): void {
    libc.munmap(this.address, this.size);
  }
}
