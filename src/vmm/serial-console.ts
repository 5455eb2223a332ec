/**
 * The VMM thread's end of COM1: drains what the guest transmitted, hands it to the configured sink
 * (stdout, a file, nothing) and keeps it for the library API (text, stream, waitFor); feeds input.
 *
 * Threads: VMM thread only. The drain loop waits with Atomics.waitAsync (never blocks, inv 2).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import type { ByteQueue } from "../../devices/byte-queue.ts";
import { DeadlineError } from "./deadline.ts";

/** How long the drain loop sleeps when the guest is silent (it wakes at once on output). */
const IDLE_WAKE_MS = 1000;
/** Output kept in memory for `text`/`waitFor`; older output is dropped beyond this. */
const KEPT_BYTES = 64 << 20;

export type SerialSink = { kind: "stdout" } | { kind: "file"; path: string } | { kind: "none" };

/** Guest serial output and input, for the CLI and for tests. */
export class SerialConsole {
  private readonly chunks: Uint8Array[] = [];
  private kept = 0;
  private total = 0;
  private decoded = "";
  private readonly decoder = new TextDecoder("utf-8", { fatal: false });
  private readonly listeners = new Set<(chunk: Uint8Array | null) => void>();
  private fd: number | undefined;
  private closed = false;
  private readonly pumping: Promise<void>;

  constructor(
    private readonly tx: ByteQueue,
    private readonly rx: ByteQueue,
    private readonly sink: SerialSink,
  ) {
    if (sink.kind === "file") this.fd = openSync(sink.path, "w");
    this.pumping = this.pump();
  }

  /** Every byte the guest has written so far, decoded as UTF-8. */
  get text(): string {
    return this.decoded;
  }

  /** Bytes the guest wrote (including any no longer kept). */
  get bytesOut(): number {
    return this.total;
  }

  /** Bytes the guest wrote while the queue was full (lost). */
  get bytesDropped(): number {
    return this.tx.dropped;
  }

  private async pump(): Promise<void> {
    while (!this.closed) {
      const seen = this.tx.commits;
      this.take();
      await this.tx.waitForCommit(seen, IDLE_WAKE_MS);
    }
    this.take();
  }

  private take(): void {
    const bytes = this.tx.drain();
    if (bytes.length === 0) return;
    this.total += bytes.length;
    if (this.sink.kind === "stdout") process.stdout.write(bytes);
    else if (this.fd !== undefined) writeSync(this.fd, bytes);
    this.chunks.push(bytes);
    this.kept += bytes.length;
    this.decoded += this.decoder.decode(bytes, { stream: true });
    while (this.kept > KEPT_BYTES && this.chunks.length > 1) {
      this.kept -= this.chunks.shift()!.length;
      this.decoded = this.decoded.slice(this.decoded.length - KEPT_BYTES);
    }
    for (const l of this.listeners) l(bytes);
  }

  /** Output as a stream: everything kept so far, then live output until the VM stops. */
  stream(): ReadableStream<Uint8Array> {
    let listener: ((chunk: Uint8Array | null) => void) | undefined;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        for (const c of this.chunks) controller.enqueue(c);
        if (this.closed) return controller.close();
        listener = (chunk) => (chunk ? controller.enqueue(chunk) : controller.close());
        this.listeners.add(listener);
      },
      cancel: () => {
        if (listener) this.listeners.delete(listener);
      },
    });
  }

  /**
   * Resolves with the first match of `pattern` in the output (past or future). Rejects with
   * DeadlineError after `timeoutMs`, quoting the tail of the output, or when the VM stops first.
   */
  waitFor(pattern: RegExp | string, timeoutMs: number): Promise<RegExpMatchArray> {
    const re =
      typeof pattern === "string" ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : pattern;
    return new Promise((resolve, reject) => {
      const check = (chunk: Uint8Array | null) => {
        const m = this.decoded.match(re);
        if (m) return finish(() => resolve(m));
        if (chunk === null) finish(() => reject(this.timeoutError(re, timeoutMs, "the VM stopped first")));
      };
      const timer = setTimeout(() => finish(() => reject(this.timeoutError(re, timeoutMs))), timeoutMs);
      const finish = (f: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        f();
      };
      this.listeners.add(check);
      check(this.closed ? null : new Uint8Array());
    });
  }

  private timeoutError(re: RegExp, timeoutMs: number, why = ""): DeadlineError {
    const tail = JSON.stringify(this.decoded.slice(-300));
    return new DeadlineError(
      `serial output matching ${re}`,
      timeoutMs,
      `${why ? `${why}; ` : ""}last output: ${tail}`,
    );
  }

  /** Queues bytes for the guest to read; returns how many fitted. */
  write(data: Uint8Array | string): number {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    let n = 0;
    for (const b of bytes) {
      if (!this.rx.push(b)) break;
      n++;
    }
    return n;
  }

  /** Final drain; ends streams and pending waits. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tx.wake();
    await this.pumping;
    for (const l of [...this.listeners]) l(null);
    this.listeners.clear();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
