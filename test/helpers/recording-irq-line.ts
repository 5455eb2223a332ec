/**
 * A test double for an interrupt line: records every level a device drives, so device unit tests can
 * count edges without KVM.
 */
import type { IrqLine } from "../../devices/irq-line.ts";

/** Records levels, for device unit tests. */
export class RecordingIrqLine implements IrqLine {
  readonly levels: number[] = [];
  get level(): number {
    return this.levels.at(-1) ?? 0;
  }
  /** Number of 0 -> 1 transitions seen. */
  get rises(): number {
    let n = 0;
    let prev = 0;
    for (const l of this.levels) {
      if (l === 1 && prev === 0) n++;
      prev = l;
    }
    return n;
  }
  set(level: 0 | 1): void {
    if (level !== this.level) this.levels.push(level);
  }
}
