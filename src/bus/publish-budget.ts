// A byte budget for publishes a bus connection cannot take yet. The Redis client would queue
// publishes without limit while disconnected (ioredis' offline queue), or while a stalled server
// stops reading; so the publishing connection runs with its offline queue off, and this holds
// what waits instead: in publish order, sent once the connection is ready again, and never more
// than `maxBytes` of payload waiting or in flight. Past the budget the OLDEST waiting publishes
// are dropped (PublishBudgetExceeded) to make room: that loses no event, because stored events
// are in the database and a receiving node that sees a later seq reads the missing ones back
// (gap repair); typing is ephemeral. So that a later seq always comes, the newest publish of a
// group that had to be dropped outright (the budget full of publishes already sent and not yet
// acknowledged: a stalled server) is kept aside, within the same budget, and sent once there is
// room, unless a newer publish of that group went through first; those take at most a quarter of
// the budget more. Used by every Redis bus.

/** A publish dropped because the bus already holds `maxBytes` of payload it could not send. */
export class PublishBudgetExceeded extends Error {
  constructor(maxBytes: number) {
    super(`bus publish queue full (${maxBytes} bytes waiting): publish dropped; receivers repair stored events from the database`);
  }
}

export interface PublishBudgetOptions {
  maxBytes: number;
  /** Whether a command sent now is written to the server (not refused or queued by the client). */
  ready: () => boolean;
  /** Sends one publish; rejects at once when the connection is not ready. */
  send: (group: string, payload: string) => Promise<unknown>;
  /** Told of every publish dropped for the budget. */
  onDrop?: (bytes: number) => void;
}

interface Entry {
  n: number;
  group: string;
  payload: string;
  size: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

const ignore = () => {};

export class PublishBudget {
  private readonly waiting: Entry[] = [];
  /** Per group, the newest publish dropped outright, to send once there is room (oldest group first). */
  private readonly setAside = new Map<string, string>();
  private setAsideBytes = 0;
  private held = 0;
  private counter = 0;
  private closed = false;

  constructor(private readonly opts: PublishBudgetOptions) {}

  /** Payload bytes waiting to be sent, sent and not yet acknowledged, or set aside. */
  get bytes(): number {
    return this.held + this.setAsideBytes;
  }

  publish(group: string, payload: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error("bus closed"));
    const size = Buffer.byteLength(payload);
    const max = this.opts.maxBytes;
    // Room is made by dropping the oldest publishes still waiting: the newest always goes out.
    while (this.held + size > max && this.waiting.length > 0) this.drop(this.waiting.shift()!);
    this.unsetAside(group); // this one is newer
    if (this.held + size > max) {
      // Everything held is in flight: drop this one, but keep it aside as its group's newest
      // (set-aside payloads take at most a quarter of the budget more; the oldest group's go first).
      this.opts.onDrop?.(size);
      if (size <= max / 4) {
        while (this.setAsideBytes + size > max / 4) this.unsetAside(this.setAside.keys().next().value!);
        this.setAside.set(group, payload);
        this.setAsideBytes += size;
      }
      return Promise.reject(new PublishBudgetExceeded(max));
    }
    return this.enqueue(group, payload, size);
  }

  /** The connection is ready (again): sends what waited, in publish order, then what was set aside. */
  flush(): void {
    while (this.waiting.length > 0 && this.opts.ready()) this.send(this.waiting.shift()!);
    this.sendSetAside();
  }

  /** Refuses everything still waiting, and anything the closing connection gives back (the bus is closing). */
  close(): void {
    this.closed = true;
    for (const e of this.waiting.splice(0)) this.settle(e, new Error("bus closed"));
    this.setAside.clear();
    this.setAsideBytes = 0;
  }

  private enqueue(group: string, payload: string, size: number): Promise<void> {
    this.held += size;
    return new Promise<void>((resolve, reject) => {
      const e: Entry = { n: ++this.counter, group, payload, size, resolve, reject };
      if (this.waiting.length === 0 && this.opts.ready()) this.send(e);
      else this.waiting.push(e);
    });
  }

  private send(e: Entry): void {
    this.opts.send(e.group, e.payload).then(
      () => {
        this.settle(e);
        this.sendSetAside();
      },
      (err: Error) => {
        if (this.opts.ready() || this.closed) return this.settle(e, err);
        // The connection went away before the command was written: wait for the next `ready`,
        // in its place among the others.
        const at = this.waiting.findIndex((w) => w.n > e.n);
        this.waiting.splice(at === -1 ? this.waiting.length : at, 0, e);
      },
    );
  }

  /** Sends set-aside publishes while nothing waits and they fit. */
  private sendSetAside(): void {
    for (const [group, payload] of this.setAside) {
      if (this.waiting.length > 0 || !this.opts.ready() || this.closed) return;
      const size = Buffer.byteLength(payload);
      if (this.held + size > this.opts.maxBytes) return;
      this.unsetAside(group);
      this.enqueue(group, payload, size).catch(ignore);
    }
  }

  private unsetAside(group: string): void {
    const payload = this.setAside.get(group);
    if (payload === undefined) return;
    this.setAside.delete(group);
    this.setAsideBytes -= Buffer.byteLength(payload);
  }

  private drop(e: Entry): void {
    this.opts.onDrop?.(e.size);
    this.settle(e, new PublishBudgetExceeded(this.opts.maxBytes));
  }

  private settle(e: Entry, err?: Error): void {
    this.held -= e.size;
    if (err) e.reject(err);
    else e.resolve();
  }
}
