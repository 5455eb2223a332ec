/**
 * The VMM thread's end of COM1: drains what the guest transmitted, hands it to the configured sink
 * (stdout, a file, nothing) and keeps it for the library API (text, stream, waitFor); feeds input.
 *
 * A sink that fails (a full disk, EIO, a closed stdout) never stops the drain loop and never throws out
 * of it: the first failure is kept as `sinkError` and handed to `onSinkError` listeners, the sink is
 * given up, and output from then on is dropped for it and counted in `bytesDropped` (it is still kept in
 * memory for text/stream/waitFor). The VM keeps running; what to do about it is the caller's choice (the
 * CLI logs one line, and stops the VM when stdout is closed).
 *
 * Threads: VMM thread only. The drain loop waits with Atomics.waitAsync (never blocks, [vmm-never-blocks]).
 */
import { closeSync, openSync, writeSync } from "node:fs";
import type { ByteQueue } from "../../devices/byte-queue.ts";
import { describeErrno } from "../../ffi/errno-names.ts";
import { BunvmmError } from "../errors.ts";
import { DeadlineError } from "./deadline.ts";

/** How long the drain loop sleeps when the guest is silent (it wakes at once on output). */
const IDLE_WAKE_MS = 1000;
/** Output kept in memory for `text`/`waitFor`; older output is dropped beyond this. */
const KEPT_BYTES = 64 << 20;

export type SerialSink = { kind: "stdout" } | { kind: "file"; path: string } | { kind: "none" };

/** The sink refused guest output (or could not be opened); `code` is the errno symbol, e.g. "ENOSPC". */
export class SerialSinkError extends BunvmmError {
  override name = "SerialSinkError";
  constructor(
    readonly sink: Exclude<SerialSink, { kind: "none" }>,
    readonly code: string | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super("host", message, options);
  }
}

/** "serial file /x.log" or "serial output to stdout": how a sink is named in messages. */
function sinkName(sink: Exclude<SerialSink, { kind: "none" }>): string {
  return sink.kind === "stdout" ? "serial output to stdout" : `serial file ${sink.path}`;
}

/** "no space left on device (ENOSPC)" for a node:fs error, its message otherwise. */
function describeFsFailure(e: unknown): { code: string | undefined; words: string } {
  const code = typeof e === "object" && e !== null && "code" in e ? String(e.code) : undefined;
  const errno = typeof e === "object" && e !== null && "errno" in e ? Number(e.errno) : Number.NaN;
  if (Number.isInteger(errno) && errno !== 0) {
    const words = describeErrno(Math.abs(errno));
    if (!words.startsWith("errno ")) return { code, words };
  }
  return { code, words: e instanceof Error ? e.message : String(e) };
}

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
  private _sinkError: SerialSinkError | undefined;
  /** Output the sink refused or that came after it failed (kept in memory all the same). */
  private sinkDropped = 0;
  private readonly sinkErrorListeners = new Set<(e: SerialSinkError) => void>();
  /** process.stdout reports a closed pipe asynchronously, as an "error" event (EPIPE). */
  private readonly onStdoutError = (e: unknown) => this.sinkFailed(e, 0);

  /** @throws {SerialSinkError} when the serial file cannot be opened for writing. */
  constructor(
    private readonly tx: ByteQueue,
    private readonly rx: ByteQueue,
    private readonly sink: SerialSink,
  ) {
    if (sink.kind === "file") {
      try {
        this.fd = openSync(sink.path, "w");
      } catch (e) {
        const { code, words } = describeFsFailure(e);
        throw new SerialSinkError(sink, code, `cannot open ${sinkName(sink)}: ${words}`, { cause: e });
      }
    }
    if (sink.kind === "stdout") process.stdout.on("error", this.onStdoutError);
    this.pumping = this.pump();
  }

  /** Why the sink was given up, if it was; output since then is counted in `bytesDropped`. */
  get sinkError(): SerialSinkError | undefined {
    return this._sinkError;
  }

  /** Calls `listener` once when the sink fails (at once, on a later tick, if it already has). */
  onSinkError(listener: (e: SerialSinkError) => void): void {
    const failed = this._sinkError;
    if (failed) queueMicrotask(() => listener(failed));
    else this.sinkErrorListeners.add(listener);
  }

  /** Every byte the guest has written so far, decoded as UTF-8. */
  get text(): string {
    return this.decoded;
  }

  /** Bytes the guest wrote (including any no longer kept). */
  get bytesOut(): number {
    return this.total;
  }

  /**
   * Bytes of guest output lost: written while the queue was full, or refused by a failed sink (those
   * are still in `text`).
   */
  get bytesDropped(): number {
    return this.tx.dropped + this.sinkDropped;
  }

  private async pump(): Promise<void> {
    while (!this.closed) {
      const seen = this.tx.commits;
      this.take();
      await this.tx.waitForCommit(seen, IDLE_WAKE_MS);
    }
    this.take();
  }

  /** Hands `bytes` to the sink; a failure gives the sink up (never throws: the drain loop must go on). */
  private deliver(bytes: Uint8Array): void {
    if (this.sink.kind === "none") return;
    if (this._sinkError) {
      this.sinkDropped += bytes.length;
      return;
    }
    let written = 0;
    try {
      if (this.sink.kind === "stdout") {
        process.stdout.write(bytes);
        written = bytes.length;
      } else {
        // A regular file takes everything unless it fails; a short write is retried for the rest, and
        // each retry takes at least one byte or fails, so the loop ends.
        while (written < bytes.length && this.fd !== undefined) {
          const n = writeSync(this.fd, bytes, written);
          if (n <= 0) throw new Error(`write took none of ${bytes.length - written} bytes`);
          written += n;
        }
      }
    } catch (e) {
      this.sinkFailed(e, bytes.length - written);
    }
  }

  /** The first failure gives the sink up and tells the listeners; later ones only count. */
  private sinkFailed(e: unknown, lost: number): void {
    this.sinkDropped += lost;
    if (this._sinkError || this.sink.kind === "none") return;
    const { code, words } = describeFsFailure(e);
    this._sinkError = new SerialSinkError(
      this.sink,
      code,
      `${sinkName(this.sink)} failed: ${words}; guest output is dropped from now on (counted in bytes_dropped)`,
      { cause: e },
    );
    this.closeFile();
    for (const l of this.sinkErrorListeners) l(this._sinkError);
    this.sinkErrorListeners.clear();
  }

  private closeFile(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // A failed close of a sink already given up changes nothing: its output is already counted lost.
    }
    this.fd = undefined;
  }

  private take(): void {
    const bytes = this.tx.drain();
    if (bytes.length === 0) return;
    this.total += bytes.length;
    this.deliver(bytes);
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
    this.sinkErrorListeners.clear();
    // An EPIPE reported after this is the owner's to catch (the CLI keeps a listener for the process).
    if (this.sink.kind === "stdout") process.stdout.off("error", this.onStdoutError);
    this.closeFile();
  }
}
