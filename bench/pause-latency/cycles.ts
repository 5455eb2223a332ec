// The measurement loop every contender shares: pause, a random gap, resume, a random gap, timed with
// performance.now() around each awaited operation; and the percentiles.

/** One cell: every kept sample of both operations, in the order taken. */
export interface Samples {
  /** ms, one per cycle after the warm-up. */
  pause: number[];
  resume: number[];
  /** ms since the cell's first measured cycle at which each pause started (to place outliers in time). */
  at: number[];
  /** The warm-up cycles' figures (not in the percentiles). */
  warmupPause: number[];
  warmupResume: number[];
}

export interface CycleOps {
  pause(): Promise<unknown>;
  resume(): Promise<unknown>;
}

/** A small deterministic PRNG (mulberry32): every contender gets the same sequence of gaps. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface CycleOptions {
  samples: number;
  warmup: number;
  /** Gap before each operation, uniform in [gapMinMs, gapMaxMs]. */
  gapMinMs: number;
  gapMaxMs: number;
  seed: number;
}

/**
 * Runs a contender's cycles a block at a time (the contenders take turns): warmup + samples cycles in
 * all, each a gap (the guest runs), a timed pause, a gap (it stays paused), a timed resume. Bounded:
 * a fixed number of cycles, and each operation is bounded by the contender's own deadline (it rejects).
 */
export class CycleRunner {
  readonly samples: Samples = { pause: [], resume: [], at: [], warmupPause: [], warmupResume: [] };
  private readonly rand: () => number;
  private done = 0;
  private origin = 0;

  constructor(
    private readonly ops: CycleOps,
    private readonly o: CycleOptions,
  ) {
    this.rand = prng(o.seed);
  }

  get finished(): boolean {
    return this.done >= this.o.warmup + this.o.samples;
  }

  /** The next `count` measured cycles (plus the warm-up, in the first block). */
  async block(count: number): Promise<void> {
    const end = Math.min(this.o.warmup + this.o.samples, Math.max(this.done, this.o.warmup) + count);
    const gap = () => sleep(this.o.gapMinMs + this.rand() * (this.o.gapMaxMs - this.o.gapMinMs));
    const s = this.samples;
    for (; this.done < end; this.done++) {
      await gap();
      const t0 = performance.now();
      if (this.done === this.o.warmup) this.origin = t0;
      await this.ops.pause();
      const t1 = performance.now();
      await gap();
      const t2 = performance.now();
      await this.ops.resume();
      const t3 = performance.now();
      if (this.done < this.o.warmup) {
        s.warmupPause.push(t1 - t0);
        s.warmupResume.push(t3 - t2);
      } else {
        s.pause.push(t1 - t0);
        s.resume.push(t3 - t2);
        s.at.push(t0 - this.origin);
      }
    }
  }
}

/** Nearest-rank percentile (p in 0..100) of unsorted `xs`. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export interface Stats {
  p50: number;
  p99: number;
  max: number;
}

export const stats = (xs: number[]): Stats => ({
  p50: percentile(xs, 50),
  p99: percentile(xs, 99),
  max: Math.max(...xs),
});
