/**
 * Getting a vCPU out of KVM_RUN from another thread: the worker blocks KICK_SIGNAL in its
 * own thread and lets KVM unblock it only inside KVM_RUN (KVM_SET_SIGNAL_MASK); the kicker sets
 * kvm_run.immediate_exit and sends the signal. No signal handler runs: KVM_RUN returns EINTR and the
 * worker consumes the pending signal with sigtimedwait.
 *
 * Lost-kick windows, both closed: a kick that lands after the worker's checkpoint but before KVM_RUN
 * finds immediate_exit = 1 (KVM_RUN returns at once); a signal that lands outside KVM_RUN stays
 * pending (blocked) and makes the next KVM_RUN return at once. Checked by model/pause.pml.
 *
 * One more hazard: Bun's garbage collector suspends threads with SIGPWR and waits inside that handler
 * with its own signal mask, under which a kick would be delivered; with the default action (terminate)
 * that killed the process. `installKickHandler` gives the signal a do-nothing handler for the whole
 * process, so such a delivery is harmless; immediate_exit still guarantees the next KVM_RUN returns.
 */
import { ptr } from "bun:ffi";
import { KVM_RUN_LAYOUT } from "../../ffi/kvm-structs.ts";
import {
  errno,
  GLIBC_SIGSET_BYTES,
  KERNEL_SIGSET_BYTES,
  libc,
  RTLD_DEFAULT,
  SA_RESTART,
  SIG_BLOCK,
} from "../../ffi/libc.ts";
import { SIGACTION_LAYOUT } from "../../ffi/libc-structs.ts";
import type { VcpuFd } from "../kvm/vcpu-fd.ts";
import { LibcError } from "../sys/libc-error.ts";

/** A real-time signal neither glibc (32, 33) nor Bun uses. */
export const KICK_SIGNAL = 40;
const IMMEDIATE_EXIT = KVM_RUN_LAYOUT.fields.immediate_exit.offset;

function sigsetWith(signal: number): Uint8Array {
  const set = new Uint8Array(GLIBC_SIGSET_BYTES);
  set[(signal - 1) >> 3]! |= 1 << ((signal - 1) & 7);
  return set;
}

let handlerInstalled = false;

/**
 * Makes a kick delivered outside KVM_RUN harmless (see above): the handler is libc's `abs`, a function
 * that takes the signal number as its int argument and touches nothing. Once per process, from the
 * VMM thread, before any vCPU worker starts.
 */
export function installKickHandler(): void {
  if (handlerInstalled) return;
  const noop = libc.dlsym(RTLD_DEFAULT, Buffer.from("abs\0"));
  if (BigInt(noop) === 0n) throw new Error("dlsym(abs) found no symbol");
  const act = new Uint8Array(SIGACTION_LAYOUT.size);
  const v = new DataView(act.buffer);
  v.setBigUint64(SIGACTION_LAYOUT.fields.sa_handler.offset, BigInt(noop), true);
  act.fill(
    0xff,
    SIGACTION_LAYOUT.fields.sa_mask.offset,
    SIGACTION_LAYOUT.fields.sa_mask.offset + SIGACTION_LAYOUT.fields.sa_mask.size,
  );
  v.setInt32(SIGACTION_LAYOUT.fields.sa_flags.offset, SA_RESTART, true);
  if (libc.sigaction(KICK_SIGNAL, ptr(act), null) !== 0) throw new LibcError("sigaction", errno());
  handlerInstalled = true;
}

/** Worker side: one per vCPU thread. */
export class KickReceiver {
  private readonly set = sigsetWith(KICK_SIGNAL);
  private readonly zeroTimeout = new BigInt64Array(2);

  /**
   * Blocks the kick signal in the calling thread and tells KVM to unblock it during KVM_RUN. Must run
   * in the worker thread, before it publishes its thread id.
   */
  constructor(vcpu: VcpuFd) {
    const old = new Uint8Array(GLIBC_SIGSET_BYTES);
    const rc = libc.pthread_sigmask(SIG_BLOCK, ptr(this.set), ptr(old));
    if (rc !== 0) throw new LibcError("pthread_sigmask", rc);
    // Inside KVM_RUN: the thread's previous mask, without the kick signal.
    const inRun = old.slice(0, KERNEL_SIGSET_BYTES);
    inRun[(KICK_SIGNAL - 1) >> 3]! &= ~(1 << ((KICK_SIGNAL - 1) & 7));
    vcpu.setSignalMask(inRun);
  }

  /** The thread id to publish in the control block. */
  threadId(): bigint {
    return BigInt(libc.pthread_self());
  }

  /** After KVM_RUN returned EINTR: clear immediate_exit, then drop a pending kick if there is one. */
  consume(runPage: Uint8Array): void {
    runPage[IMMEDIATE_EXIT] = 0;
    libc.sigtimedwait(ptr(this.set), null, ptr(this.zeroTimeout));
  }
}

/**
 * VMM side: make the vCPU leave KVM_RUN soon. The caller changed CMD first, so whatever the worker
 * sees after it returns is the new request. `threadId` 0 means the worker has not started its loop
 * yet; it will read CMD before its first KVM_RUN.
 */
export function kick(runPage: Uint8Array, threadId: bigint): void {
  runPage[IMMEDIATE_EXIT] = 1;
  if (threadId !== 0n) libc.pthread_kill(threadId, KICK_SIGNAL);
}
