/**
 * The vCPU run loop: checkpoint, KVM_RUN, handle the exit on this thread, checkpoint.
 *
 * Threads: runs only in the vCPU's own worker. Its one blocking wait is the park (Atomics.wait on CMD,
 * [wake-on-pause-kill]). Exit handlers run devices that never wait ([no-vcpu-waits-vcpu]); requests for
 * the VMM are posted, never awaited. KILL is tested before PAUSE at every checkpoint ([kill-dominates]);
 * a half-done I/O is completed before parking (one KVM_RUN with immediate_exit = 1). A request in the
 * REQUEST word (save this vCPU's state) is served while parked, before the epoch that carries it is
 * acknowledged ([served-while-parked]). Checked by
 * model/pause.pml (the same loop) and test/vcpu/pause-protocol.test.ts (on real KVM).
 */

import { ALL_ONES_64, allOnes } from "../../devices/bus.ts";
import type { Buses } from "../../devices/device-type.ts";
import type { VmRequestSink } from "../../devices/vm-request.ts";
import { describeErrno, EAGAIN, EINTR } from "../../ffi/errno-names.ts";
import { KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN } from "../../ffi/kvm-structs.ts";
import { libc } from "../../ffi/libc.ts";
import type { IoExit, KvmRun, MmioExit } from "../kvm/kvm-run.ts";
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
  NO_REQUEST,
  PARKED,
  PAUSE,
  PAUSES,
  REQUEST,
  RUNNING,
  UNOWNED_MMIO,
  UNOWNED_PIO,
} from "./control-block.ts";
import { buildCrashReport, type CrashReport, describeFatalExit } from "./crash-report.ts";
import type { KickReceiver } from "./kick.ts";

/** Serves a parked vCPU's REQUEST (src/vcpu/control-block.ts) on this vCPU's own thread. */
export type ParkedRequestHandler = (request: number) => void;

/** How a vCPU's loop ended. */
export type VcpuOutcome = { kind: "killed" } | { kind: "crashed"; report: CrashReport };

/** One vCPU's loop; everything it touches belongs to this worker or is shared lock-free. */
export class VcpuRunner {
  /** The vCPU's kvm_run area: the exit decoder and the bytes string I/O reads and writes. */
  private readonly kvmRun: KvmRun;
  /** The CMD value this vCPU last acted on: the checkpoint's fast path is one load and one compare. */
  private seenCmd = -1;

  constructor(
    readonly index: number,
    private readonly vcpu: VcpuFd,
    private readonly control: ControlBlock,
    private readonly buses: Buses,
    private readonly kicks: KickReceiver,
    private readonly memory: GuestMemory,
    private readonly request: VmRequestSink,
    private readonly serveRequest: ParkedRequestHandler = () => undefined,
  ) {
    this.kvmRun = vcpu.kvmRun;
  }

  /** Runs the guest until KILL or a fatal exit. RUNSTATE is EXITED when this returns. */
  run(): VcpuOutcome {
    for (;;) {
      if (!this.checkpoint()) return { kind: "killed" };
      const err = this.vcpu.run();
      if (err !== 0) {
        if (err === EINTR) {
          this.control.count(KICKS);
          this.kicks.consume(this.kvmRun.bytes);
          continue;
        }
        if (err === EAGAIN) continue; // an AP still waiting for INIT/SIPI: KVM_RUN returns EAGAIN
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
      this.control.count(PAUSES); // before the ACK, so a VMM that saw the pause done sees it counted
      this.acknowledgeParked(c);
      for (;;) {
        Atomics.wait(w, CMD, c); // returns at once if CMD already changed: no lost wake-up
        c = Atomics.load(w, CMD);
        if (c & KILL) return this.exit(c);
        if (!(c & PAUSE)) break;
        this.acknowledgeParked(c); // a newer pause epoch while parked: it may carry a request
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

  /**
   * Serves a pending REQUEST, clears it, then acknowledges CMD's epoch as PARKED: the VMM sees the
   * epoch acknowledged only once the request is done ([served-while-parked]).
   */
  private acknowledgeParked(c: number): void {
    const w = this.control.words;
    const request = Atomics.load(w, REQUEST);
    if (request !== NO_REQUEST) {
      this.serveRequest(request);
      Atomics.store(w, REQUEST, NO_REQUEST);
    }
    this.control.acknowledge(PARKED, epochOf(c));
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
    this.kvmRun.immediateExit = 1;
    this.vcpu.run();
    this.kicks.consume(this.kvmRun.bytes);
  }

  private crash(reason: string): VcpuOutcome {
    const report = buildCrashReport(this.index, reason, this.vcpu, this.memory);
    this.exit(this.control.cmd);
    return { kind: "crashed", report };
  }

  /** Returns a reason when the exit is fatal for the VM, undefined when the guest may go on. */
  private handleExit(): string | undefined {
    const exit = this.kvmRun.exit();
    switch (exit.kind) {
      case "io":
        this.control.count(IO_EXITS);
        this.handleIo(exit);
        return undefined;
      case "mmio":
        this.control.count(MMIO_EXITS);
        this.handleMmio(exit);
        return undefined;
      case "intr":
      case "hlt":
        return undefined;
      case "system_event":
        if (exit.type === KVM_SYSTEM_EVENT_SHUTDOWN) this.request("poweroff", "KVM system event");
        else if (exit.type === KVM_SYSTEM_EVENT_RESET) this.request("reset", "KVM system event");
        return undefined;
      default:
        return describeFatalExit(exit);
    }
  }

  private handleIo(exit: IoExit): void {
    const bytes = this.kvmRun.bytes;
    const v = this.kvmRun.view;
    const { port, size, count, dataOffset } = exit;
    const pio = this.buses.pio;
    if (exit.direction === "out") {
      for (let i = 0, at = dataOffset; i < count; i++, at += size) {
        const value = size === 1 ? bytes[at]! : size === 2 ? v.getUint16(at, true) : v.getUint32(at, true);
        if (!pio.write(port, size, value)) this.control.count(UNOWNED_PIO);
      }
      return;
    }
    for (let i = 0, at = dataOffset; i < count; i++, at += size) {
      let value = pio.read(port, size);
      if (value === undefined) {
        this.control.count(UNOWNED_PIO);
        value = allOnes(size);
      }
      if (size === 1) bytes[at] = value;
      else if (size === 2) v.setUint16(at, value, true);
      else v.setUint32(at, value >>> 0, true);
    }
  }

  /** 1, 2 and 4 bytes travel as numbers; 8 bytes as one bigint, whole, both ways. */
  private handleMmio(exit: MmioExit): void {
    const { gpa, len } = exit;
    const run = this.kvmRun;
    const mmio = this.buses.mmio;
    if (len === 8) {
      if (exit.isWrite) {
        if (!mmio.write64(gpa, run.mmioValue64())) this.control.count(UNOWNED_MMIO);
        return;
      }
      let value = mmio.read64(gpa);
      if (value === undefined) {
        this.control.count(UNOWNED_MMIO);
        value = ALL_ONES_64;
      }
      run.setMmioValue64(value);
      return;
    }
    if (exit.isWrite) {
      if (!mmio.write(gpa, len, run.mmioValue(len))) this.control.count(UNOWNED_MMIO);
      return;
    }
    let value = mmio.read(gpa, len);
    if (value === undefined) {
      this.control.count(UNOWNED_MMIO);
      value = allOnes(len);
    }
    run.setMmioValue(len, value);
  }
}
