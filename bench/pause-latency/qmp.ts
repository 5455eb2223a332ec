// A minimal QMP client over a Unix socket (Bun.connect): one command at a time, each reply matched by
// its "id" and bounded by a deadline. Asynchronous events (STOP, RESUME, ...) carry no id and are
// counted and otherwise ignored.

export class QmpError extends Error {}

interface Pending {
  id: number;
  resolve: (value: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class Qmp {
  private buffer = "";
  private pending: Pending | null = null;
  private nextId = 1;
  private greeting: ((v: unknown) => void) | null = null;
  private closedWhy: string | null = null;
  /** Asynchronous events received, by name. */
  readonly events = new Map<string, number>();

  private constructor(private socket: Bun.Socket<undefined> | null) {}

  /** Connects, reads the greeting and negotiates capabilities, all within `timeoutMs`. */
  static async connect(path: string, timeoutMs: number): Promise<Qmp> {
    const qmp = new Qmp(null);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const greeted = new Promise<unknown>((resolve, reject) => {
      qmp.greeting = resolve;
      timer = setTimeout(
        () => reject(new QmpError(`no QMP greeting on ${path} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    greeted.catch(() => undefined); // observed below, unless connect itself fails first
    try {
      qmp.socket = await Bun.connect({
        unix: path,
        socket: {
          data: (_s, data) => qmp.onData(data.toString()),
          close: () => qmp.onClose("connection closed"),
          error: (_s, e) => qmp.onClose(`socket error: ${e.message}`),
        },
      });
      await greeted;
    } finally {
      clearTimeout(timer);
    }
    await qmp.execute("qmp_capabilities", undefined, timeoutMs);
    return qmp;
  }

  private onClose(why: string): void {
    this.closedWhy ??= why;
    const p = this.pending;
    if (p) {
      this.pending = null;
      clearTimeout(p.timer);
      p.reject(new QmpError(`QMP ${why} while waiting for reply ${p.id}`));
    }
  }

  private onData(text: string): void {
    this.buffer += text;
    for (let nl = this.buffer.indexOf("\n"); nl >= 0; nl = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(JSON.parse(line));
    }
  }

  // biome-ignore lint/suspicious/noExplicitAny: QMP messages are untyped JSON
  private onMessage(m: any): void {
    if (m.QMP) {
      this.greeting?.(m);
      this.greeting = null;
      return;
    }
    if (typeof m.event === "string") {
      this.events.set(m.event, (this.events.get(m.event) ?? 0) + 1);
      return;
    }
    const p = this.pending;
    if (!p || m.id !== p.id) return; // a late reply to a command that already timed out
    this.pending = null;
    clearTimeout(p.timer);
    if ("return" in m) p.resolve(m.return);
    else p.reject(new QmpError(`QMP error: ${JSON.stringify(m.error ?? m)}`));
  }

  /** Sends one command and resolves with its "return" (rejects on "error", close or deadline). */
  execute(command: string, args: object | undefined, timeoutMs: number): Promise<unknown> {
    if (this.closedWhy) return Promise.reject(new QmpError(`QMP ${this.closedWhy}`));
    if (this.pending) return Promise.reject(new QmpError("one QMP command at a time"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = null;
        reject(new QmpError(`no reply to ${command} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending = { id, resolve, reject, timer };
      this.socket!.write(
        `${JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id })}\n`,
      );
    });
  }

  close(): void {
    this.socket?.end();
  }
}
