// Typing indicators, both ways. Outgoing: call `keystroke()` on every input event; it sends
// `typing` at most once per `throttleMs` and `not_typing` after `idleMs` without a keystroke.
// Incoming: who is typing now, each entry expiring after `expireMs` without a refresh (so a
// peer that vanished without `not_typing` does not type forever).

export interface TypingOptions {
  /** Least time between two outgoing `typing` frames while the user keeps typing. Default 2000. */
  throttleMs?: number;
  /** Inactivity after which `not_typing` is sent. Default 3000. */
  idleMs?: number;
  /** How long an incoming `typing` counts without a refresh. Default 5000. */
  expireMs?: number;
}

export class TypingSender {
  private active = false;
  private sentAt = 0;
  private idle: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly send: (status: "typing" | "not_typing") => void,
    private readonly opts: Required<TypingOptions>,
  ) {}

  keystroke(): void {
    const now = Date.now();
    if (!this.active || now - this.sentAt >= this.opts.throttleMs) {
      this.active = true;
      this.sentAt = now;
      this.send("typing");
    }
    clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stop(), this.opts.idleMs);
  }

  /** Sends `not_typing` now if `typing` was the last thing sent. */
  stop(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
    if (!this.active) return;
    this.active = false;
    this.send("not_typing");
  }

  /** Forgets the state without sending (the connection is gone: peers expire us anyway). */
  reset(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
    this.active = false;
  }
}

export class Typers {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly expireMs: number,
    private readonly changed: (users: string[]) => void,
  ) {}

  get users(): string[] {
    return [...this.timers.keys()];
  }

  typing(user: string): void {
    const had = this.timers.has(user);
    clearTimeout(this.timers.get(user));
    this.timers.set(user, setTimeout(() => this.stopped(user), this.expireMs));
    if (!had) this.changed(this.users);
  }

  stopped(user: string): void {
    if (!this.timers.has(user)) return;
    clearTimeout(this.timers.get(user));
    this.timers.delete(user);
    this.changed(this.users);
  }

  clear(): void {
    if (this.timers.size === 0) return;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.changed([]);
  }
}
