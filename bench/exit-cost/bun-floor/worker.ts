// One idle floor worker: says it started, then parks like a vCPU that waits for INIT/SIPI.
declare const self: Worker;
self.onmessage = (e: MessageEvent<{ index: number; parked: SharedArrayBuffer }>) => {
  const words = new Int32Array(e.data.parked);
  self.postMessage("ready");
  Atomics.wait(words, e.data.index, 0); // never notified: the process is killed
};
