/**
 * The keyboard end of `bunvmm run`: this process's stdin goes to the guest's serial port.
 *
 * - On a terminal: raw mode while the VM runs (no local echo, no line editing, every byte as typed,
 *   Ctrl-C and Ctrl-Z to the guest instead of signals to bunvmm), restored by `detach()` and, should the
 *   process end any other way, by a process "exit" hook. Ctrl-A is the escape, as in QEMU: Ctrl-A x
 *   stops the VM, Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A h prints the keys, and Ctrl-A followed by any
 *   other byte sends both bytes.
 * - From a pipe or a file: bytes go to the guest unchanged (no escape), so a script can drive a serial
 *   console; end of input leaves the VM running.
 *
 * Input the guest has not read yet waits here, with stdin paused, rather than being dropped when the
 * serial receive queue is full; the retry timer is the only wait, and it ends with `detach()`.
 *
 * Threads: VMM thread (Bun's main thread), from stdin's "data" events.
 * @module
 */
import type { SerialConsole } from "../vmm/serial-console.ts";

/** Ctrl-A: the escape byte. */
export const ESCAPE_BYTE = 0x01;
/** After the escape: stop the VM. */
const QUIT_KEYS: ReadonlySet<number> = new Set(["x".charCodeAt(0), "X".charCodeAt(0)]);
/** After the escape: print the keys. */
const HELP_KEYS: ReadonlySet<number> = new Set(["h".charCodeAt(0), "H".charCodeAt(0), "?".charCodeAt(0)]);
/** The line Ctrl-A h prints (and `bunvmm run` logs when it takes over a terminal). */
export const ESCAPE_HELP = "console: Ctrl-A x stops the VM, Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A h shows this";
/** How soon input that did not fit in the guest's receive queue is offered again. */
const RETRY_MS = 10;

/** What an escape sequence asks for, besides bytes to the guest. */
export interface EscapeActions {
  quit(): void;
  help(): void;
}

/**
 * Ctrl-A handling over a byte stream, split anywhere (an escape and its key may arrive in different
 * reads). Bytes after Ctrl-A x in the same read are discarded: the VM is stopping.
 */
export class EscapeFilter {
  private escaped = false;
  private quitting = false;

  constructor(private readonly actions: EscapeActions) {}

  /** The bytes for the guest in `input`, with escape sequences acted on and removed. */
  filter(input: Uint8Array): Uint8Array {
    const out: number[] = [];
    for (const byte of input) {
      if (this.quitting) break;
      if (!this.escaped) {
        if (byte === ESCAPE_BYTE) this.escaped = true;
        else out.push(byte);
        continue;
      }
      this.escaped = false;
      if (QUIT_KEYS.has(byte)) {
        this.quitting = true;
        this.actions.quit();
      } else if (HELP_KEYS.has(byte)) this.actions.help();
      else if (byte === ESCAPE_BYTE) out.push(ESCAPE_BYTE);
      else out.push(ESCAPE_BYTE, byte);
    }
    return Uint8Array.from(out);
  }
}

export interface ConsoleOptions {
  /** Ctrl-A x on a terminal. */
  onQuit: () => void;
  /** Where Ctrl-A h's line goes (stderr, through the logger). */
  onHelp: (line: string) => void;
}

/** stdin forwarded to `serial` until `detach()`; on a terminal, in raw mode with the Ctrl-A escape. */
export class StdinConsole {
  /** True while this process holds the terminal in raw mode. */
  private raw = false;
  private attached = true;
  private pending: Uint8Array = new Uint8Array(0);
  private retry: ReturnType<typeof setTimeout> | undefined;
  private readonly escape: EscapeFilter | undefined;
  private readonly onData = (data: Buffer) => this.feed(new Uint8Array(data));
  /** Last resort: the terminal is given back however the process ends (an uncaught error, process.exit). */
  private readonly onExit = () => this.restoreTerminal();

  constructor(
    private readonly serial: SerialConsole,
    options: ConsoleOptions,
  ) {
    const stdin = process.stdin;
    if (stdin.isTTY) {
      this.escape = new EscapeFilter({ quit: options.onQuit, help: () => options.onHelp(ESCAPE_HELP) });
      stdin.setRawMode(true);
      this.raw = true;
      process.on("exit", this.onExit);
    }
    stdin.on("data", this.onData);
    stdin.resume();
  }

  /** True when stdin is a terminal (raw mode and the escape apply). */
  get interactive(): boolean {
    return this.escape !== undefined;
  }

  /** Stops forwarding, gives the terminal back as it was, lets stdin go. Idempotent. */
  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    clearTimeout(this.retry);
    this.retry = undefined;
    process.stdin.off("data", this.onData);
    process.stdin.pause();
    this.restoreTerminal();
    process.off("exit", this.onExit);
  }

  private restoreTerminal(): void {
    if (!this.raw) return;
    this.raw = false;
    try {
      process.stdin.setRawMode(false);
    } catch {
      // The terminal is gone (hung up): there is nothing left to restore.
    }
  }

  private feed(data: Uint8Array): void {
    if (!this.attached) return;
    const bytes = this.escape ? this.escape.filter(data) : data;
    if (!this.attached || bytes.length === 0) return; // Ctrl-A x may have detached us
    const joined = new Uint8Array(this.pending.length + bytes.length);
    joined.set(this.pending);
    joined.set(bytes, this.pending.length);
    this.pending = joined;
    this.flush();
  }

  /** Offers pending input to the guest; what does not fit waits, with stdin paused, for a retry. */
  private flush(): void {
    this.retry = undefined;
    if (!this.attached) return;
    const n = this.serial.write(this.pending);
    this.pending = this.pending.subarray(n);
    if (this.pending.length === 0) {
      process.stdin.resume();
      return;
    }
    process.stdin.pause();
    this.retry = setTimeout(() => this.flush(), RETRY_MS);
  }
}
