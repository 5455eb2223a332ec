/**
 * The vCPU run loop: checkpoint, KVM_RUN, handle the exit on this thread, checkpoint.
 *
 * Threads: runs only in the vCPU's own worker. Its one blocking wait is the park (Atomics.wait on CMD,
 * inv 3). Exit handlers run devices that never wait (inv 5); requests for the VMM are posted, never
 * awaited. KILL is tested before PAUSE at every checkpoint (inv 4); a half-done I/O is completed
 * before parking (one KVM_RUN with immediate_exit = 1, cloud-hypervisor #3658). Checked by
 * model/pause.pml (the same loop) and test/vcpu/pause-protocol.test.ts (on real KVM).
 */

import { type AccessSize, allOnes } from "../../devices/bus.ts";
import type { Buses } from "../../devices/device-spec.ts";
import type { VmRequestSink } from "../../devices/vm-request.ts";
import { describeErrno, EAGAIN, EINTR } from "../../ffi/errno-names.ts";
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
  KVM_INTERNAL_ERROR_EMULATION,
  KVM_RUN_LAYOUT,
} from "../../ffi/kvm-structs.ts";
import { libc } from "../../ffi/libc.ts";
import type { VcpuFd } from "../kvm/vcpu-fd.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import {
  CMD,
  type ControlBlock,
  EXITS,
  epochOf,
  IO_EXITS,
  KICK,
  KICKS,
  KILL,
  MMIO_EXITS,
  PARKED,
  PAUSE,
  PAUSES,
  RUNNING,
  UNOWNED_MMIO,
  UNOWNED_PIO,
} from "./control-block.ts";
import { buildCrashReport, type CrashReport } from "./crash-report.ts";
import type { KickReceiver } from "./kick.ts";

const F = KVM_RUN_LAYOUT.fields;
const EXIT_REASON = F.exit_reason.offset;
const IO_DIRECTION = F["io.direction"].offset;
const IO_SIZE = F["io.size"].offset;
const IO_PORT = F["io.port"].offset;
const IO_COUNT = F["io.count"].offset;
const IO_DATA_OFFSET = F["io.data_offset"].offset;
const MMIO_PHYS_ADDR = F["mmio.phys_addr"].offset;
const MMIO_DATA = F["mmio.data"].offset;
const MMIO_LEN = F["mmio.len"].offset;
const MMIO_IS_WRITE = F["mmio.is_write"].offset;
const INTERNAL_SUBERROR = F["internal.suberror"].offset;
const FAIL_ENTRY_REASON = F["fail_entry.hardware_entry_failure_reason"].offset;
const SYSTEM_EVENT_TYPE = F["system_event.type"].offset;
const IMMEDIATE_EXIT = F.immediate_exit.offset;
const TWO_POW_32 = 2 ** 32;

/** KVM_SYSTEM_EVENT_* types (<linux/kvm.h>). */
const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
const KVM_SYSTEM_EVENT_RESET = 2;

/** How a vCPU's loop ended. */
export type VcpuOutcome = { kind: "killed" } | { kind: "crashed"; report: CrashReport };

/** One vCPU's loop; everything it touches belongs to this worker or is shared lock-free. */
export class VcpuRunner {
  private readonly run8: Uint8Array;
  private readonly runView: DataView;
  /** The CMD value this vCPU last acted on: the checkpoint's fast path is one load and one compare. */
  private seenCmd = -1;

  constructor(
    readonly index: number,
    private readonly vcpu: VcpuFd,
    runPage: Uint8Array,
    private readonly control: ControlBlock,
    private readonly buses: Buses,
    private readonly kicks: KickReceiver,
    private readonly memory: GuestMemory,
    private readonly request: VmRequestSink,
  ) {
    this.run8 = runPage;
    this.runView = new DataView(runPage.buffer, runPage.byteOffset, runPage.byteLength);
  }

  /** Runs the guest until KILL or a fatal exit. RUNSTATE is EXITED when this returns. */
  run(): VcpuOutcome {
    for (;;) {
      if (!this.checkpoint()) return { kind: "killed" };
      const err = this.vcpu.run();
      if (err !== 0) {
        if (err === EINTR) {
          this.control.count(KICKS);
          this.kicks.consume(this.run8);
          continue;
        }
        if (err === EAGAIN) continue; // an AP waiting for SIPI (PLATFORM.md)
        return this.crash(`KVM_RUN failed: ${describeErrno(err)}`);
      }
      this.control.count(EXITS);
      const fatal = this.handleExit();
      if (fatal !== undefined) return this.crash(fatal);
    }
  }

  /**
   * Reads CMD once and acts on it: KILL (exit), PAUSE (park until resumed or killed), KICK (clear),
   * or a new epoch (acknowledge). Returns false when the loop must end.
   */
  private checkpoint(): boolean {
    const w = this.control.words;
    let c = Atomics.load(w, CMD);
    if (c === this.seenCmd) return true;
    if (c & KILL) return this.exit(c);
    if (c & PAUSE) {
      this.completePendingIo();
      this.control.acknowledge(PARKED, epochOf(c));
      this.control.count(PAUSES);
      for (;;) {
        Atomics.wait(w, CMD, c); // returns at once if CMD already changed: no lost wake-up
        c = Atomics.load(w, CMD);
        if (c & KILL) return this.exit(c);
        if (!(c & PAUSE)) break;
        this.control.acknowledge(PARKED, epochOf(c)); // a newer pause epoch while parked
      }
      this.acknowledgeRunning(c);
      // Give up the CPU once before entering the guest. A resume wakes every vCPU at once; on a host
      // with fewer cores than busy vCPUs a woken vCPU otherwise waits behind one that already spins
      // in the guest until that one's time slice ends (4 ms ticks here), and resume waits for it.
      // Measured on 2 cores, 2 spinning threads: unpark p50 4 ms without, 0.02 ms with.
      libc.sched_yield();
      return true;
    }
    this.acknowledgeRunning(c);
    return true;
  }

  /** Clears a KICK, acknowledges CMD's epoch as RUNNING and remembers CMD for the fast path. */
  private acknowledgeRunning(c: number): void {
    if (c & KICK) c = this.control.updateCmd((old) => old & ~KICK);
    this.control.acknowledge(RUNNING, epochOf(c));
    this.seenCmd = c;
  }

  private exit(c: number): false {
    this.control.acknowledgeExit(epochOf(c));
    return false;
  }

  /** Lets KVM finish an instruction whose I/O we already answered, without entering the guest. */
  private completePendingIo(): void {
    this.run8[IMMEDIATE_EXIT] = 1;
    this.vcpu.run();
    this.kicks.consume(this.run8);
  }

  private crash(reason: string): VcpuOutcome {
    const report = buildCrashReport(this.index, reason, this.vcpu, this.memory);
    this.exit(this.control.cmd);
    return { kind: "crashed", report };
  }

  /** Returns a reason when the exit is fatal for the VM, undefined when the guest may go on. */
  private handleExit(): string | undefined {
    const reason = this.runView.getUint32(EXIT_REASON, true);
    switch (reason) {
      case KVM_EXIT_IO:
        this.control.count(IO_EXITS);
        this.handleIo();
        return undefined;
      case KVM_EXIT_MMIO:
        this.control.count(MMIO_EXITS);
        this.handleMmio();
        return undefined;
      case KVM_EXIT_INTR:
      case KVM_EXIT_HLT:
        return undefined;
      case KVM_EXIT_SHUTDOWN:
        return "the guest triple-faulted (KVM_EXIT_SHUTDOWN)";
      case KVM_EXIT_FAIL_ENTRY: {
        const hw = this.runView.getBigUint64(FAIL_ENTRY_REASON, true);
        return `KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason 0x${hw.toString(16)})`;
      }
      case KVM_EXIT_INTERNAL_ERROR: {
        const sub = this.runView.getUint32(INTERNAL_SUBERROR, true);
        return sub === KVM_INTERNAL_ERROR_EMULATION
          ? "KVM cannot emulate the guest's instruction (KVM_EXIT_INTERNAL_ERROR, emulation failure)"
          : `KVM internal error (KVM_EXIT_INTERNAL_ERROR, suberror ${sub})`;
      }
      case KVM_EXIT_SYSTEM_EVENT: {
        const type = this.runView.getUint32(SYSTEM_EVENT_TYPE, true);
        if (type === KVM_SYSTEM_EVENT_SHUTDOWN) this.request("poweroff", "KVM system event");
        else if (type === KVM_SYSTEM_EVENT_RESET) this.request("reset", "KVM system event");
        return undefined;
      }
      default:
        return `unexpected exit ${KVM_EXIT_NAMES[reason] ?? reason}`;
    }
  }

  private handleIo(): void {
    const v = this.runView;
    const out = this.run8[IO_DIRECTION] === KVM_EXIT_IO_OUT;
    const size = this.run8[IO_SIZE] as AccessSize;
    const port = v.getUint16(IO_PORT, true);
    const count = v.getUint32(IO_COUNT, true);
    const base = v.getUint32(IO_DATA_OFFSET, true); // within the mmap'd run area, far below 4 GiB
    for (let i = 0; i < count; i++) {
      const at = base + i * size;
      if (out) {
        const value =
          size === 1 ? this.run8[at]! : size === 2 ? v.getUint16(at, true) : v.getUint32(at, true);
        if (!this.buses.pio.write(port, size, value)) this.control.count(UNOWNED_PIO);
      } else {
        let value = this.buses.pio.read(port, size);
        if (value === undefined) {
          this.control.count(UNOWNED_PIO);
          value = allOnes(size);
        }
        if (size === 1) this.run8[at] = value;
        else if (size === 2) v.setUint16(at, value, true);
        else v.setUint32(at, value >>> 0, true);
      }
    }
  }

  private handleMmio(): void {
    const v = this.runView;
    const addr = v.getUint32(MMIO_PHYS_ADDR, true) + v.getUint32(MMIO_PHYS_ADDR + 4, true) * TWO_POW_32;
    const len = v.getUint32(MMIO_LEN, true) as AccessSize;
    if (this.run8[MMIO_IS_WRITE]) {
      const value =
        len === 1
          ? this.run8[MMIO_DATA]!
          : len === 2
            ? v.getUint16(MMIO_DATA, true)
            : v.getUint32(MMIO_DATA, true);
      if (!this.buses.mmio.write(addr, len, value)) this.control.count(UNOWNED_MMIO);
      return;
    }
    let value = this.buses.mmio.read(addr, len);
    if (value === undefined) {
      this.control.count(UNOWNED_MMIO);
      value = allOnes(len);
    }
    if (len === 8) v.setUint32(MMIO_DATA + 4, value === allOnes(4) ? 0xffff_ffff : 0, true);
    if (len === 1) this.run8[MMIO_DATA] = value;
    else if (len === 2) v.setUint16(MMIO_DATA, value, true);
    else v.setUint32(MMIO_DATA, value >>> 0, true);
  }
}
