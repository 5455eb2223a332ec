/**
 * One vCPU's whole architectural state for a snapshot: read on the vCPU's own worker thread while it is
 * parked (a SAVE_STATE request, src/vcpu/run-loop.ts), written back on the VMM thread into a fresh vCPU
 * before any worker runs it (as the boot code sets boot registers). Both are the only threads that may
 * issue this vCPU's ioctls at that moment: KVM holds the vCPU's mutex for all of KVM_RUN.
 *
 * The restore order matters, and is the one KVM's checks need:
 *   CPUID first           KVM checks XSAVE, MSR and CR4 bits against the guest's CPUID.
 *   TSC frequency         before the TSC MSR, so the saved TSC value is read at the saved rate.
 *   sregs, regs           EFER, CR0/CR4 and APIC_BASE (x2APIC mode) before anything that depends on them.
 *   FPU, XSAVE, XCRS      the extended state, then XCR0.
 *   debug registers
 *   LAPIC before MSRs     x2APIC MSRs and the TSC-deadline timer live in the LAPIC KVM just loaded.
 *   MSRs, TSC deadline last  the deadline is compared with the TSC set earlier in the same list.
 *   MP state              whether the CPU runs, halts or waits for INIT/SIPI.
 *   vCPU events last      pending exceptions, NMIs and interrupt shadows; setting other state can clear them.
 *
 * Threads: `readVcpuState` in the vCPU's worker (parked); `writeVcpuState` on the VMM thread before the
 * worker starts. Encoding to and from JSON runs on the VMM thread.
 */
import type { CpuidTable } from "../kvm/cpuid-table.ts";
import type { VcpuFd } from "../kvm/vcpu-fd.ts";
import { SnapshotError } from "./snapshot-error.ts";

/** IA32_TSC_DEADLINE: restored after every other MSR (the TSC among them). */
export const MSR_IA32_TSC_DEADLINE = 0x0000_06e0;

/** What the worker needs to read a vCPU's state; computed once per machine on the VMM thread. */
export interface VcpuStateOptions {
  /** KVM_GET_MSR_INDEX_LIST: every MSR KVM saves and restores. */
  readonly msrIndices: readonly number[];
  /** `VmFd.xsave2Size()`: 0 when the host lacks KVM_CAP_XSAVE2. */
  readonly xsave2Size: number;
}

/** One vCPU's state: the kernel structs' bytes (opaque, handed back to the matching setter) and numbers. */
export interface VcpuState {
  readonly index: number;
  readonly regs: Uint8Array;
  readonly sregs: Uint8Array;
  readonly fpu: Uint8Array;
  readonly xsave: Uint8Array;
  readonly xcrs: Uint8Array;
  readonly lapic: Uint8Array;
  readonly debugregs: Uint8Array;
  readonly events: Uint8Array;
  readonly mpState: number;
  readonly tscKhz: number;
  /** [index, value] of every MSR KVM let us read (the index list filtered by what KVM_GET_MSRS took). */
  readonly msrs: ReadonlyArray<readonly [number, bigint]>;
}

/**
 * KVM_GET_MSRS stops at the first MSR it cannot read on this host (one the index list names for a
 * feature the guest's CPUID lacks); skip that one and go on, so the result is every readable MSR.
 */
function readMsrs(vcpu: VcpuFd, indices: readonly number[]): Array<[number, bigint]> {
  const out: Array<[number, bigint]> = [];
  let rest = indices;
  while (rest.length > 0) {
    const got = vcpu.getMsrs(rest);
    out.push(...got);
    rest = rest.slice(got.length + 1); // the one KVM refused is skipped
  }
  return out;
}

/** The vCPU's state. Its own worker thread only, while parked. @throws {KvmError} naming the ioctl. */
export function readVcpuState(index: number, vcpu: VcpuFd, options: VcpuStateOptions): VcpuState {
  return {
    index,
    mpState: vcpu.getMpState(),
    regs: vcpu.getRegsBytes(),
    sregs: vcpu.getSregsBytes(),
    fpu: vcpu.getFpu(),
    xsave: vcpu.getXsave(options.xsave2Size),
    xcrs: vcpu.getXcrs(),
    debugregs: vcpu.getDebugregs(),
    lapic: vcpu.getLapic(),
    tscKhz: vcpu.getTscKhz(),
    msrs: readMsrs(vcpu, options.msrIndices),
    events: vcpu.getVcpuEvents(),
  };
}

/**
 * Loads `state` into a vCPU that has not run, in the order the file's header explains. Returns the MSRs
 * KVM refused (none on the host that saved them). VMM thread, before the worker starts.
 */
export function writeVcpuState(vcpu: VcpuFd, cpuid: CpuidTable, state: VcpuState): number[] {
  vcpu.setCpuid2(cpuid);
  if (vcpu.getTscKhz() !== state.tscKhz) vcpu.setTscKhz(state.tscKhz);
  vcpu.setSregsBytes(state.sregs);
  vcpu.setRegsBytes(state.regs);
  vcpu.setFpuBytes(state.fpu);
  vcpu.setXsave(state.xsave);
  vcpu.setXcrs(state.xcrs);
  vcpu.setDebugregs(state.debugregs);
  vcpu.setLapic(state.lapic);
  const msrs = [
    ...state.msrs.filter(([i]) => i !== MSR_IA32_TSC_DEADLINE),
    ...state.msrs.filter(([i]) => i === MSR_IA32_TSC_DEADLINE),
  ];
  const refused: number[] = [];
  let rest = msrs;
  while (rest.length > 0) {
    const accepted = vcpu.setMsrs(rest);
    if (accepted < rest.length) refused.push(rest[accepted]![0]);
    rest = rest.slice(accepted + 1);
  }
  vcpu.setMpState(state.mpState);
  vcpu.setVcpuEvents(state.events);
  return refused;
}

/** A VcpuState as JSON: struct bytes in base64, MSR values in hex. */
export interface VcpuStateJson {
  index: number;
  mp_state: number;
  tsc_khz: number;
  regs: string;
  sregs: string;
  fpu: string;
  xsave: string;
  xcrs: string;
  lapic: string;
  debugregs: string;
  events: string;
  msrs: Array<[number, string]>;
}

const BYTE_FIELDS = ["regs", "sregs", "fpu", "xsave", "xcrs", "lapic", "debugregs", "events"] as const;

export function vcpuStateToJson(s: VcpuState): VcpuStateJson {
  const bytes = Object.fromEntries(BYTE_FIELDS.map((f) => [f, Buffer.from(s[f]).toString("base64")]));
  return {
    index: s.index,
    mp_state: s.mpState,
    tsc_khz: s.tscKhz,
    ...(bytes as Record<(typeof BYTE_FIELDS)[number], string>),
    msrs: s.msrs.map(([i, v]) => [i, `0x${v.toString(16)}`]),
  };
}

/** @throws {SnapshotError} naming the field that is missing or malformed. */
export function vcpuStateFromJson(j: VcpuStateJson, file: string): VcpuState {
  const bad = (what: string) => new SnapshotError(`${file}: vCPU ${j?.index}: ${what}`);
  if (typeof j !== "object" || j === null || !Number.isInteger(j.index)) throw bad("no vCPU index");
  for (const n of ["mp_state", "tsc_khz"] as const) {
    if (!Number.isInteger(j[n])) throw bad(`${n} is not an integer`);
  }
  const bytes = {} as Record<(typeof BYTE_FIELDS)[number], Uint8Array>;
  for (const f of BYTE_FIELDS) {
    if (typeof j[f] !== "string") throw bad(`${f} is missing`);
    bytes[f] = new Uint8Array(Buffer.from(j[f], "base64"));
  }
  if (!Array.isArray(j.msrs)) throw bad("msrs is not a list");
  const msrs = j.msrs.map(([i, v]) => {
    if (!Number.isInteger(i) || typeof v !== "string") throw bad(`MSR entry ${JSON.stringify([i, v])}`);
    return [i, BigInt(v)] as const;
  });
  return { index: j.index, mpState: j.mp_state, tscKhz: j.tsc_khz, ...bytes, msrs };
}
