/**
 * Worker entry of the dummy device back-end (dummy-backend.ts): serves its one queue inside the
 * device-worker loop.
 *
 * Threads: this device worker's thread.
 */
import { serveDeviceWorker } from "../../devices/device-worker-loop.ts";
import { DUMMY, type DummyBackendInit, GATE_BOUND_MS } from "./dummy-backend.ts";

serveDeviceWorker((raw) => {
  const init = raw as DummyBackendInit;
  const w = new Int32Array(init.state);
  return {
    queueFds: [init.queueFd],
    process: () => {
      while (Atomics.load(w, DUMMY.CONSUMED) < Atomics.load(w, DUMMY.PUBLISHED)) {
        if (Atomics.load(w, DUMMY.HOLD)) {
          Atomics.store(w, DUMMY.IN_REQUEST, 1);
          Atomics.notify(w, DUMMY.IN_REQUEST);
          Atomics.wait(w, DUMMY.GATE, 0, GATE_BOUND_MS);
          Atomics.store(w, DUMMY.IN_REQUEST, 0);
        }
        Atomics.add(w, DUMMY.CONSUMED, 1);
      }
    },
  };
});
