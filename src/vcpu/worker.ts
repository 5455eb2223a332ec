/**
 * Entry point of a vCPU's Bun Worker: attaches to the VM the VMM thread built (fds, guest RAM, the
 * kvm_run page, the devices' shared state), then runs the loop until KILL or a fatal exit.
 *
 * Threads: this worker's thread only. It talks to the VMM thread by postMessage (requests, its
 * outcome) and the control block; it never waits for the VMM ([vmm-never-blocks], [no-vcpu-waits-vcpu]).
 */
import type { EjectTarget } from "../../devices/cpu-hotplug-controller.ts";
import { attachFrontends } from "../../devices/frontends.ts";
import { KvmIrqLine } from "../../devices/irq-line.ts";
import type { DeviceSpec } from "../../devices/registry.ts";
import type { VmRequest } from "../../devices/vm-request.ts";
import { KvmRun } from "../kvm/kvm-run.ts";
import { VcpuFd } from "../kvm/vcpu-fd.ts";
import { VmFd } from "../kvm/vm-fd.ts";
import { GuestMemory, type RegionDescriptor } from "../memory/guest-memory.ts";
import {
  readVcpuState,
  type VcpuStateJson,
  type VcpuStateOptions,
  vcpuStateToJson,
} from "../snapshot/vcpu-state.ts";
import { ControlBlock, epochOf, KILL, SAVE_STATE } from "./control-block.ts";
import { KickReceiver } from "./kick.ts";
import { type VcpuOutcome, VcpuRunner } from "./run-loop.ts";

/** The one message a vCPU worker receives. */
export interface VcpuWorkerInit {
  index: number;
  vcpuFd: number;
  vmFd: number;
  runAddr: number;
  runSize: number;
  /** Control blocks of every possible vCPU; this one's is `controls[index]`. */
  controls: SharedArrayBuffer[];
  memory: RegionDescriptor[];
  devices: DeviceSpec[];
  /** What a SAVE_STATE request reads (the MSR list, the XSAVE size). */
  state: VcpuStateOptions;
}

/** Messages a vCPU worker posts. */
export type VcpuWorkerMessage =
  | { type: "request"; vcpu: number; request: VmRequest; source: string }
  /** The guest ejected `vcpu` (already KILLed by the device): the VMM reaps it. */
  | { type: "eject"; vcpu: number; by: number }
  | { type: "outcome"; vcpu: number; outcome: VcpuOutcome }
  /** The answer to a SAVE_STATE request, posted before the vCPU acknowledges its epoch. */
  | { type: "state"; vcpu: number; state?: VcpuStateJson; error?: string };

declare const self: Worker;

function post(message: VcpuWorkerMessage): void {
  self.postMessage(message);
}

function start(init: VcpuWorkerInit): void {
  const control = new ControlBlock(init.controls[init.index]);
  let outcome: VcpuOutcome;
  try {
    const vcpu = new VcpuFd(init.vcpuFd, new KvmRun(init.runAddr, init.runSize));
    const vm = new VmFd(init.vmFd);
    const memory = GuestMemory.attach(init.memory);
    // One post per kind of request: a guest looping on the reset port must not flood the VMM.
    const posted = new Set<VmRequest>();
    const request = (r: VmRequest, source: string) => {
      if (posted.has(r)) return;
      posted.add(r);
      post({ type: "request", vcpu: init.index, request: r, source });
    };
    // [no-vcpu-waits-vcpu]: an eject marks the victim and posts; this vCPU never waits for it.
    const blocks = init.controls.map((b) => new ControlBlock(b));
    const eject: EjectTarget = {
      readCmd: (cpu) => blocks[cpu]?.cmd ?? KILL,
      tryKill: (cpu, seen) => {
        const victim = blocks[cpu];
        if (!victim || seen & KILL) return "already";
        if (!victim.compareAndSetCmd(seen, seen | KILL)) return "changed";
        post({ type: "eject", vcpu: cpu, by: init.index });
        return "killed";
      },
    };
    const buses = attachFrontends(init.devices, {
      memory,
      irqLine: (gsi) => new KvmIrqLine(vm, gsi),
      request,
      eject,
    });
    const kicks = new KickReceiver(vcpu);
    control.threadId = kicks.threadId();
    // [served-while-parked]: runs inside the park, on this thread, before the epoch is acknowledged.
    const serve = (r: number) => {
      if (r !== SAVE_STATE) {
        post({ type: "state", vcpu: init.index, error: `unknown request ${r}` });
        return;
      }
      try {
        post({
          type: "state",
          vcpu: init.index,
          state: vcpuStateToJson(readVcpuState(init.index, vcpu, init.state)),
        });
      } catch (e) {
        post({ type: "state", vcpu: init.index, error: (e as Error).message });
      }
    };
    outcome = new VcpuRunner(init.index, vcpu, control, buses, kicks, memory, request, serve).run();
  } catch (e) {
    control.acknowledgeExit(epochOf(control.cmd));
    outcome = {
      kind: "crashed",
      report: {
        vcpu: init.index,
        summary: `vCPU ${init.index} worker failed: ${(e as Error).message}`,
        registers: [],
      },
    };
  }
  post({ type: "outcome", vcpu: init.index, outcome });
}

self.onmessage = (event: MessageEvent<VcpuWorkerInit>) => start(event.data);

// Once the loop runs, this thread runs the guest, handles exits and parks, and allocates next to
// nothing, so the collector would never run: what loading the modules left behind would stay resident
// for the VM's life, in every vCPU (~0.5 MiB each). One full collection (~1-2 ms) now, while the worker
// waits for its init: for vCPU 0, started while the VMM builds the VM (cpu-manager.ts,
// startVcpuSpares), that is off the path to the guest's first instruction.
Bun.gc(true);
