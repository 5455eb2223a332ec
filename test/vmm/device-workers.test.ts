/**
 * Device workers on the parkable-worker lifecycle (src/vmm/device-workers.ts, devices/device-worker-loop.ts),
 * with a dummy back-end on real eventfds (no KVM): a pause lands mid-request and the request finishes
 * first; a pause/resume storm with notifications racing it loses no request and consumes none while
 * parked; kill while parked; a back-end stuck past the deadline makes pause roll back with an error
 * naming the device.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { EventFd } from "../../src/sys/eventfd.ts";
import { within } from "../../src/vmm/deadline.ts";
import { DeviceWorkers } from "../../src/vmm/device-workers.ts";
import { WorkerTimeoutError } from "../../src/vmm/worker-pool.ts";
import {
  DUMMY,
  DUMMY_BACKEND_ENTRY,
  type DummyBackendInit,
  dummyBackendState,
} from "../helpers/dummy-backend.ts";
import { waitUntil } from "../helpers/guests.ts";
import { Rng } from "../helpers/rng.ts";

const TIMEOUT_MS = 5000;
const STORM_CYCLES = 2000;
/** How long a pause must stay unresolved while the back-end is held mid-request: an assertion window. */
const HELD_WINDOW_MS = 100;

interface Rig {
  workers: DeviceWorkers;
  state: Int32Array;
  queue: EventFd;
  crashes: string[];
  publish(): void;
}

const rigs: Rig[] = [];

function rig(): Rig {
  const state = dummyBackendState();
  const queue = EventFd.create();
  const crashes: string[] = [];
  const init: DummyBackendInit = { state: state.buffer as SharedArrayBuffer, queueFd: queue.fd };
  const workers = new DeviceWorkers(
    [{ device: "dummy0", backend: { entry: DUMMY_BACKEND_ENTRY, init } }],
    (_d, s) => crashes.push(s),
  );
  const r: Rig = {
    workers,
    state,
    queue,
    crashes,
    publish: () => {
      Atomics.add(state, DUMMY.PUBLISHED, 1);
      queue.write();
    },
  };
  rigs.push(r);
  workers.start();
  return r;
}

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    Atomics.store(r.state, DUMMY.GATE, 1);
    Atomics.notify(r.state, DUMMY.GATE);
    expect(await r.workers.kill(TIMEOUT_MS)).toEqual([]);
    r.workers.close();
    r.queue.close();
    expect(r.crashes).toEqual([]);
  }
});

const consumed = (r: Rig) => Atomics.load(r.state, DUMMY.CONSUMED);
const published = (r: Rig) => Atomics.load(r.state, DUMMY.PUBLISHED);

describe("device workers", () => {
  test("serve notifications while running", async () => {
    const r = rig();
    for (let i = 0; i < 10; i++) r.publish();
    await waitUntil(() => consumed(r) === 10, "10 requests consumed");
    expect(r.workers.runStates()).toEqual({ "device dummy0": "RUNNING" });
  });

  test("a pause that lands mid-request parks only after the request finished", async () => {
    const r = rig();
    Atomics.store(r.state, DUMMY.HOLD, 1);
    r.publish();
    await waitUntil(() => Atomics.load(r.state, DUMMY.IN_REQUEST) === 1, "the back-end mid-request");
    const paused = r.workers.pause(TIMEOUT_MS).then(() => "parked");
    expect(await within(paused, HELD_WINDOW_MS)).toBeUndefined();
    expect(consumed(r)).toBe(0);
    Atomics.store(r.state, DUMMY.GATE, 1);
    Atomics.notify(r.state, DUMMY.GATE);
    expect(await paused).toBe("parked");
    expect(consumed(r)).toBe(1);
    expect(r.workers.runStates()).toEqual({ "device dummy0": "PARKED" });
    await r.workers.resume(TIMEOUT_MS);
  });

  test(`a ${STORM_CYCLES}-cycle pause/resume storm with racing notifications loses no request and serves none while parked`, async () => {
    const r = rig();
    const rand = new Rng(8);
    const random = () => rand.next();
    for (let cycle = 0; cycle < STORM_CYCLES; cycle++) {
      if (random() < 0.5) r.publish();
      const pausing = r.workers.pause(TIMEOUT_MS);
      if (random() < 0.5) r.publish(); // races the pause
      await pausing;
      const atPause = consumed(r);
      if (random() < 0.5) r.publish(); // lands while parked: served only after resume
      expect(consumed(r)).toBe(atPause);
      const resuming = r.workers.resume(TIMEOUT_MS);
      if (random() < 0.5) r.publish(); // races the resume
      await resuming;
    }
    await waitUntil(() => consumed(r) === published(r), "every published request consumed");
    expect(published(r)).toBeGreaterThan(STORM_CYCLES);
  });

  test("kill while parked ends the worker", async () => {
    const r = rig();
    await r.workers.pause(TIMEOUT_MS);
    r.publish();
    expect(await r.workers.kill(TIMEOUT_MS)).toEqual([]);
    expect(r.workers.runStates()).toEqual({ "device dummy0": "EXITED" });
    expect(consumed(r)).toBe(0);
  });

  test("a back-end stuck past the deadline makes pause roll back with an error naming the device", async () => {
    const r = rig();
    Atomics.store(r.state, DUMMY.HOLD, 1);
    r.publish();
    await waitUntil(() => Atomics.load(r.state, DUMMY.IN_REQUEST) === 1, "the back-end mid-request");
    const error = await r.workers.pause(200).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkerTimeoutError);
    expect((error as Error).message).toBe(
      "pause timed out after 200 ms waiting for device dummy0 RUNNING (acked epoch 1, wanted 2); rolled back: every device worker is running",
    );
    Atomics.store(r.state, DUMMY.HOLD, 0);
    Atomics.store(r.state, DUMMY.GATE, 1);
    Atomics.notify(r.state, DUMMY.GATE);
    await waitUntil(() => consumed(r) === 1, "the held request finished");
    await r.workers.pause(TIMEOUT_MS); // the pool is usable again
    await r.workers.resume(TIMEOUT_MS);
  });
});
