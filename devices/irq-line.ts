/**
 * An interrupt line as a device sees it: a level it can set. The device never knows which GSI or
 * which irqchip is behind it (the device manager wires that).
 */
import type { VmFd } from "../src/kvm/vm-fd.ts";

export interface IrqLine {
  /** Drive the line. Devices call it only when their (shared) level word changes. */
  set(level: 0 | 1): void;
}

/** A GSI on KVM's in-kernel irqchip (KVM_IRQ_LINE is a VM ioctl, safe from any vCPU worker). */
export class KvmIrqLine implements IrqLine {
  constructor(
    private readonly vm: VmFd,
    readonly gsi: number,
  ) {}

  set(level: 0 | 1): void {
    this.vm.irqLine(this.gsi, level);
  }
}
