/**
 * ACPI CPU hotplug controller: the guest-facing side of CPU hotplug (QEMU's "CPU hotplug interface",
 * docs/specs/acpi_cpu_hotplug.rst, the layout cloud-hypervisor also uses). The guest's AML (\_SB.CPUS,
 * built from CPU_HOTPLUG_FIELDS below) selects a CPU, reads its status, acknowledges insert/remove
 * events and ejects it.
 *
 *   offset 0  CSEL    u32, exactly 4-byte access: selects a CPU; reads back the selection
 *   offset 4  status  u8, exactly 1-byte access:
 *                       read  bit0 CPEN enabled, bit1 CINS inserting, bit2 CRMV removing
 *                       write bit1 acks the insert, bit2 acks the removal, bit3 CEJ0 ejects
 *   offsets 5..11     reserved: read 0, writes ignored
 * A CSEL beyond max_vcpus reads status 0; any other width is ignored and counted.
 *
 * Threads: runs on whichever vCPU the guest uses; all state is words in one SharedArrayBuffer, no
 * lock anywhere ([no-wait-holding], [bus-holds-nothing]: this thin device is not what pause or resize hold). Bits are split by
 * owner ([hotplug-owner-bits]): STATUS[cpu] (CPEN, CINS, CRMV) is guest-visible (VMM sets with Atomics.or, guest acks
 * with Atomics.and); PENDING[cpu] is VMM-owned and the guest cannot change it. Eject is honoured only
 * when PENDING[cpu] is set and cpu != 0; it posts an eject request and returns: no vCPU ever waits for
 * another ([no-vcpu-waits-vcpu]). Checked by model/pause.pml and test/devices/cpu-hotplug-controller.test.ts.
 */
import type { AccessSize, BusDevice } from "./bus.ts";
import type { CpuHotplugSpec } from "./cpu-hotplug.ts";
import type { Buses, DeviceContext } from "./device-type.ts";

/** Bytes of MMIO the controller decodes. */
export const CPU_HOTPLUG_SIZE = 12;
export const CPU_HOTPLUG_CSEL_OFFSET = 0;
export const CPU_HOTPLUG_STATUS_OFFSET = 4;

/**
 * The register block as AML Field units, in order: [name, bits]; null is reserved space. One table
 * drives both the decode below and the DSDT's `Field (PRST, ...)` (src/arch/x86_64/acpi/).
 */
export const CPU_HOTPLUG_FIELDS = [
  ["CSEL", 32],
  ["CPEN", 1],
  ["CINS", 1],
  ["CRMV", 1],
  ["CEJ0", 1],
  [null, 4],
] as const;

function statusBit(name: "CPEN" | "CINS" | "CRMV" | "CEJ0"): number {
  let bit = 0;
  for (const [field, bits] of CPU_HOTPLUG_FIELDS) {
    if (field === name) return 1 << (bit - CPU_HOTPLUG_STATUS_OFFSET * 8);
    bit += bits;
  }
  throw new Error(`no field ${name}`);
}
/** Status bits, derived from CPU_HOTPLUG_FIELDS. */
export const CPU_ENABLED = statusBit("CPEN");
export const CPU_INSERTING = statusBit("CINS");
export const CPU_REMOVING = statusBit("CRMV");
export const CPU_EJECT = statusBit("CEJ0");
const GUEST_ACK_MASK = CPU_INSERTING | CPU_REMOVING;

/** Shared words: [CSEL, IGNORED, EJECTS_REFUSED, then STATUS[max], then PENDING[max]]. */
const CSEL = 0;
const IGNORED = 1;
const EJECTS_REFUSED = 2;
const HEADER_WORDS = 3;
const CSEL_MASK = 0xffff_ffff;

/** Allocates the controller's shared state for `maxVcpus` CPUs, all absent. */
export function createCpuHotplugState(maxVcpus: number): SharedArrayBuffer {
  return new SharedArrayBuffer((HEADER_WORDS + 2 * maxVcpus) * Int32Array.BYTES_PER_ELEMENT);
}

/**
 * How the controller stops an ejected CPU without waiting for it ([no-vcpu-waits-vcpu]). Implemented by the vCPU
 * worker over the control blocks; the device never sees their layout.
 */
export interface EjectTarget {
  /** The victim's CMD word, read before the PENDING_REMOVAL check (see `eject` below). */
  readCmd(cpu: number): number;
  /**
   * Compare-and-swap the victim's CMD from `seen` to `seen | KILL`. "killed": this call set KILL (it
   * also kicked and posted the reap, once); "already": KILL was set before (a repeated eject,
   * coalesced); "changed": CMD moved since `seen` (a pause, say): read and check again.
   */
  tryKill(cpu: number, seen: number): "killed" | "already" | "changed";
}

/** Typed access to the shared state; both the device and the VMM's CPU manager use it. */
export class CpuHotplugState {
  readonly words: Int32Array;
  readonly maxVcpus: number;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.words = new Int32Array(buffer);
    this.maxVcpus = (this.words.length - HEADER_WORDS) / 2;
  }

  private statusIndex(cpu: number): number {
    return HEADER_WORDS + cpu;
  }
  private pendingIndex(cpu: number): number {
    return HEADER_WORDS + this.maxVcpus + cpu;
  }

  status(cpu: number): number {
    return cpu >= 0 && cpu < this.maxVcpus ? Atomics.load(this.words, this.statusIndex(cpu)) : 0;
  }
  /** VMM: set guest-visible bits (CPEN|CINS on add, CRMV on remove). */
  setStatus(cpu: number, bits: number): void {
    Atomics.or(this.words, this.statusIndex(cpu), bits);
  }
  /** VMM or guest ack: clear guest-visible bits. */
  clearStatus(cpu: number, bits: number): void {
    Atomics.and(this.words, this.statusIndex(cpu), ~bits);
  }
  /** VMM-owned: marked for removal; the only thing that makes an eject honoured. */
  pendingRemoval(cpu: number): boolean {
    return cpu > 0 && cpu < this.maxVcpus && Atomics.load(this.words, this.pendingIndex(cpu)) !== 0;
  }
  setPendingRemoval(cpu: number, pending: boolean): void {
    Atomics.store(this.words, this.pendingIndex(cpu), pending ? 1 : 0);
  }
  /** True while any CPU is marked for removal (resize is refused then, [hotplug-owner-bits]). */
  anyPendingRemoval(): boolean {
    for (let cpu = 0; cpu < this.maxVcpus; cpu++) if (this.pendingRemoval(cpu)) return true;
    return false;
  }
  get ignoredAccesses(): number {
    return Atomics.load(this.words, IGNORED);
  }
  get refusedEjects(): number {
    return Atomics.load(this.words, EJECTS_REFUSED);
  }
  countIgnored(): void {
    Atomics.add(this.words, IGNORED, 1);
  }
  countRefusedEject(): void {
    Atomics.add(this.words, EJECTS_REFUSED, 1);
  }
  get selected(): number {
    return Atomics.load(this.words, CSEL) >>> 0;
  }
  select(cpu: number): void {
    Atomics.store(this.words, CSEL, cpu & CSEL_MASK);
  }
}

/** The MMIO register block over the shared state. */
export class CpuHotplugController implements BusDevice {
  private readonly state: CpuHotplugState;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly target: EjectTarget,
  ) {
    this.state = new CpuHotplugState(buffer);
  }

  read(offset: number, size: AccessSize): number {
    if (offset === CPU_HOTPLUG_CSEL_OFFSET && size === 4) return this.state.selected;
    if (offset === CPU_HOTPLUG_STATUS_OFFSET && size === 1) return this.state.status(this.state.selected);
    if (offset === CPU_HOTPLUG_CSEL_OFFSET || offset === CPU_HOTPLUG_STATUS_OFFSET) this.state.countIgnored();
    return 0;
  }

  write(offset: number, size: AccessSize, value: number): void {
    if (offset === CPU_HOTPLUG_CSEL_OFFSET && size === 4) {
      this.state.select(value >>> 0);
      return;
    }
    if (offset !== CPU_HOTPLUG_STATUS_OFFSET || size !== 1) {
      this.state.countIgnored();
      return;
    }
    const cpu = this.state.selected;
    if (cpu >= this.state.maxVcpus) return;
    const acks = value & GUEST_ACK_MASK;
    if (acks) this.state.clearStatus(cpu, acks);
    if (value & CPU_EJECT) this.eject(cpu);
  }

  /**
   * Reads the victim's CMD first, then checks PENDING_REMOVAL, then sets KILL only if CMD is still what
   * was read. In the other order an eject delayed between its check and its write could kill a CPU that
   * was reaped and hot-added again in between, unmarked (model/pause.pml found it: the eject ABA). The
   * loop repeats only when another writer changed CMD, so it always ends.
   */
  private eject(cpu: number): void {
    for (;;) {
      const seen = this.target.readCmd(cpu);
      if (!this.state.pendingRemoval(cpu)) {
        this.state.countRefusedEject();
        return;
      }
      if (this.target.tryKill(cpu, seen) !== "changed") return;
    }
  }
}

/** Every vCPU worker: the controller's registers on the MMIO bus; an eject goes through `ctx.eject`. */
export function attachCpuHotplug(spec: CpuHotplugSpec, ctx: DeviceContext, buses: Buses): void {
  buses.mmio.insert(spec.base, CPU_HOTPLUG_SIZE, new CpuHotplugController(spec.state, ctx.eject), spec.name);
}
