/**
 * The parkable-worker pool's resume order ([fair-resume], src/vmm/worker-pool.ts): each resume starts
 * waking one member further on, so with more busy workers than cores no member is always first. Run on
 * real Workers (the dummy device back-end on real eventfds, no KVM); the order is what the pool's own
 * `wake` saw, and must agree with what it reports.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { DeviceWorkerInit } from "../../devices/device-worker-loop.ts";
import { EventFd } from "../../src/sys/eventfd.ts";
import { ControlBlock, KILL } from "../../src/vcpu/control-block.ts";
import { type CmdChange, type PoolMember, WorkerPool } from "../../src/vmm/worker-pool.ts";
import { DUMMY_BACKEND_ENTRY, type DummyBackendInit, dummyBackendState } from "../helpers/dummy-backend.ts";

const TIMEOUT_MS = 5000;
const MEMBERS = 3;

interface Member extends PoolMember {
  readonly controlFd: EventFd;
  readonly queue: EventFd;
}

const pools: Array<{ pool: WorkerPool<Member>; members: Member[] }> = [];

afterEach(async () => {
  for (const { pool, members } of pools.splice(0)) {
    expect((await pool.kill(TIMEOUT_MS)).map((m) => m.label)).toEqual([]);
    for (const m of members) {
      m.controlFd.close();
      m.queue.close();
    }
  }
});

/** A pool of `n` dummy back-ends, started; `woken` records every wake, in order. */
function startPool(n: number) {
  const woken: Array<[CmdChange, number]> = [];
  const members: Member[] = Array.from({ length: n }, (_, index) => ({
    index,
    label: `dummy ${index}`,
    control: new ControlBlock(),
    controlFd: EventFd.create(),
    queue: EventFd.create(),
  }));
  const pool = new WorkerPool(members, {
    noun: "dummy",
    wake: (m, change) => {
      woken.push([change, m.index]);
      m.controlFd.write();
    },
  });
  for (const m of members) {
    const backend: DummyBackendInit = {
      state: dummyBackendState().buffer as SharedArrayBuffer,
      queueFd: m.queue.fd,
    };
    const init: DeviceWorkerInit = {
      label: m.label,
      control: m.control.buffer,
      controlFd: m.controlFd.fd,
      init: backend,
    };
    pool.spawn(m, DUMMY_BACKEND_ENTRY, init, { onMessage: () => true, onError: () => undefined });
  }
  pools.push({ pool, members });
  return { pool, members, woken };
}

const order = (woken: Array<[CmdChange, number]>, change: CmdChange) =>
  woken.filter(([c]) => c === change).map(([, i]) => i);

describe("WorkerPool resume order", () => {
  test(`rotates by one member per resume over ${MEMBERS * 2} cycles; pause keeps index order`, async () => {
    const { pool, woken } = startPool(MEMBERS);
    const resumes: number[][] = [];
    for (let cycle = 0; cycle < MEMBERS * 2; cycle++) {
      await pool.pause(TIMEOUT_MS);
      expect(order(woken, "pause")).toEqual([0, 1, 2]);
      woken.length = 0;
      await pool.resume(TIMEOUT_MS);
      expect(order(woken, "resume")).toEqual([...pool.lastResumeOrder]);
      resumes.push(order(woken, "resume"));
      woken.length = 0;
    }
    expect(resumes).toEqual([
      [0, 1, 2],
      [1, 2, 0],
      [2, 0, 1],
      [0, 1, 2],
      [1, 2, 0],
      [2, 0, 1],
    ]);
    // every member was acknowledged each time: all are running again
    expect(pool.active().map((m) => m.control.runStateName)).toEqual(["RUNNING", "RUNNING", "RUNNING"]);
  });

  test("a member that exited drops out of the rotation without stalling it", async () => {
    const { pool, members } = startPool(MEMBERS);
    await pool.pause(TIMEOUT_MS);
    await pool.resume(TIMEOUT_MS); // starts at 0
    const gone = members[1]!;
    gone.control.updateCmd((cmd) => cmd | KILL); // as a guest eject does
    let reaped = false;
    await pool.reap(gone, () => {
      reaped = true;
    });
    expect(reaped).toBe(true);
    await pool.pause(TIMEOUT_MS);
    await pool.resume(TIMEOUT_MS);
    expect(pool.lastResumeOrder).toEqual([2, 0]);
    await pool.pause(TIMEOUT_MS);
    await pool.resume(TIMEOUT_MS);
    expect(pool.lastResumeOrder).toEqual([0, 2]);
  });
});
