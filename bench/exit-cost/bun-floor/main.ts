// The runtime's floor for bunvmm's RSS and start-up: a bare Bun process that starts N idle Workers
// the way bunvmm starts its vCPU workers (`smol`, one message each, then parked in Atomics.wait), then
// writes the start marker and idles until it is killed. Everything bunvmm uses above this is ours.
//
//   bun bench/exit-cost/bun-floor/main.ts N
import { START_MARKER } from "../child.ts";

const n = Math.max(1, Number(process.argv[2] ?? "1") | 0);
const parked = new Int32Array(new SharedArrayBuffer(4 * n));
const url = new URL("./worker.ts", import.meta.url).href;
const ready: Promise<void>[] = [];
for (let i = 0; i < n; i++) {
  const w = new Worker(url, { smol: true } as WorkerOptions);
  ready.push(
    new Promise<void>((resolve) => {
      w.onmessage = () => resolve();
    }),
  );
  w.postMessage({ index: i, parked: parked.buffer });
}
await Promise.all(ready);
process.stdout.write(START_MARKER);
setInterval(() => {}, 1 << 30); // idle like a VMM thread waiting for events, until killed
