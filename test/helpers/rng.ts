/** Reproducible randomness for stress tests: print the seed, replay a failure with it. */

/** mulberry32: small, fast, good enough to spread operations and gaps. */
export class Rng {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/**
 * A random gap between operations, to vary interleavings: none, one macrotask turn, or a timer of up
 * to `maxMs`. Not a synchronisation: nothing waits for anything to happen during it (bounded by maxMs).
 */
export async function randomGap(rng: Rng, maxMs: number): Promise<void> {
  const kind = rng.int(3);
  if (kind === 0) return;
  if (kind === 1) return new Promise((r) => setImmediate(r));
  return new Promise((r) => setTimeout(r, rng.next() * maxMs)); // bounded by maxMs
}
