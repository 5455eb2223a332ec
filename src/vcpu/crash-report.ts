/**
 * What a user needs when a guest CPU dies: why, where (RIP and the instruction bytes there) and the
 * registers. Built by the vCPU's own worker (only it may issue its vCPU ioctls) and posted to the VMM.
 */

import { KVM_INTERNAL_ERROR_EMULATION, KVM_REGS_NAMES } from "../../ffi/kvm-structs.ts";
import { CR0_PG } from "../arch/x86_64/cpu-state.ts";
import type { VcpuExit } from "../kvm/kvm-run.ts";
import type { VcpuFd } from "../kvm/vcpu-fd.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import { hex } from "../numbers.ts";

/** Longest x86 instruction. */
const MAX_INSTRUCTION_BYTES = 15;

export interface CrashReport {
  vcpu: number;
  /** One line: "vCPU 0 stopped: the guest triple-faulted (KVM_EXIT_SHUTDOWN) at RIP 0x10005 (bytes 0f 0b)". */
  summary: string;
  /** Register dump lines, "rax=0x… rbx=0x…". */
  registers: string[];
}

/**
 * Why an exit stops the VM, in one phrase naming the KVM exit and its data (the decoded exit from
 * KvmRun.exit(), the same decoder the run loop uses). Only for exits the run loop treats as fatal.
 */
export function describeFatalExit(exit: VcpuExit): string {
  switch (exit.kind) {
    case "shutdown":
      return "the guest triple-faulted (KVM_EXIT_SHUTDOWN)";
    case "fail_entry":
      return `KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, hardware reason ${hex(exit.hardwareReason)}, host CPU ${exit.cpu})`;
    case "internal_error": {
      const data = exit.data.length > 0 ? `, data ${exit.data.map(hex).join(" ")}` : "";
      return exit.suberror === KVM_INTERNAL_ERROR_EMULATION
        ? `KVM cannot emulate the guest's instruction (KVM_EXIT_INTERNAL_ERROR, emulation failure${data})`
        : `KVM internal error (KVM_EXIT_INTERNAL_ERROR, suberror ${exit.suberror}${data})`;
    }
    case "unknown":
      return `unexpected exit ${exit.name} (hardware exit reason ${hex(exit.hardwareReason)})`;
    case "io":
      return `unexpected port ${exit.direction} at ${hex(exit.port)}`;
    case "mmio":
      return `unexpected MMIO ${exit.isWrite ? "write" : "read"} at ${hex(exit.gpa)}`;
    default:
      return `unexpected exit ${exit.kind}`;
  }
}

/** Collects what it can; a report is never allowed to fail (the vCPU may be in any state). */
export function buildCrashReport(
  vcpuIndex: number,
  reason: string,
  vcpu: VcpuFd,
  memory: GuestMemory,
): CrashReport {
  const registers: string[] = [];
  let where = "";
  try {
    const regs = vcpu.getRegs();
    const sregs = vcpu.getSregs();
    const linear = sregs.cs.base + regs.rip;
    let physical = linear;
    if (sregs.cr0 & CR0_PG) {
      const t = vcpu.translate(linear);
      physical = t.valid ? t.physical : -1n;
    }
    let bytes = "not in guest RAM";
    const gpa = Number(physical);
    for (let len = MAX_INSTRUCTION_BYTES; len > 0 && physical >= 0n; len--) {
      if (memory.contains(gpa, len)) {
        bytes = [...memory.read(gpa, len)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
        break;
      }
    }
    where = ` at RIP ${hex(regs.rip)} (CS base ${hex(sregs.cs.base)}; bytes ${bytes})`;
    const names = KVM_REGS_NAMES;
    for (let i = 0; i < names.length; i += 6) {
      registers.push(
        names
          .slice(i, i + 6)
          .map((n) => `${n}=${hex(regs[n])}`)
          .join(" "),
      );
    }
    registers.push(
      `cr0=${hex(sregs.cr0)} cr2=${hex(sregs.cr2)} cr3=${hex(sregs.cr3)} cr4=${hex(sregs.cr4)} efer=${hex(sregs.efer)}`,
      `cs=${hex(sregs.cs.selector)} ds=${hex(sregs.ds.selector)} ss=${hex(sregs.ss.selector)} ` +
        `gdt=${hex(sregs.gdt.base)}/${hex(sregs.gdt.limit)} idt=${hex(sregs.idt.base)}/${hex(sregs.idt.limit)}`,
    );
  } catch (e) {
    registers.push(`registers unavailable: ${(e as Error).message}`);
  }
  return { vcpu: vcpuIndex, summary: `vCPU ${vcpuIndex} stopped: ${reason}${where}`, registers };
}
