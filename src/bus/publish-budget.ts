// A byte budget for publishes a bus connection cannot take yet. The Redis client would queue
// publishes without limit while disconnected (ioredis' offline queue), or while a stalled server
// stops reading; so the publishing connection runs with its offline queue off, and this holds
// what waits instead: in publish order, sent once the connection is ready again, and never more
// than `maxBytes` of payload waiting or in flight. A publish past the budget is refused at once
// (PublishBudgetExceeded). That loses no event: stored events are in the database, and the
// receiving nodes' sequencers read a missing seq back from it (gap repair, and the catch-up
// after their own reconnect); typing is ephemeral. Used by every Redis bus implementation.

/** A publish refused because the bus already holds `maxBytes` of payload it could not send. */
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
  /** Told of every publish refused for the budget. */
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

export class PublishBudget {
  private readonly waiting: Entry[] = [];
  private held = 0;
  private counter = 0;
  private closed = false;

  constructor(private readonly opts: PublishBudgetOptions) {}

  /** Payload bytes waiting to be sent or sent and not yet acknowledged by the server. */
  get bytes(): number {
    return this.held;
  }

  publish(group: string, payload: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error("bus closed"));
    const size = Buffer.byteLength(payload);
    if (this.held + size > this.opts.maxBytes) {
      this.opts.onDrop?.(size);
      return Promise.reject(new PublishBudgetExceeded(this.opts.maxBytes));
    }
    this.held += size;
    return new Promise<void>((resolve, reject) => {
      const e: Entry = { n: ++this.counter, group, payload, size, resolve, reject };
      if (this.waiting.length === 0 && this.opts.ready()) this.send(e);
      else this.waiting.push(e);
    });
  }

  /** The connection is ready (again): sends what waited, in publish order. */
  flush(): void {
    while (this.waiting.length > 0 && this.opts.ready()) this.send(this.waiting.shift()!);
  }

  /** Refuses everything still waiting, and anything the closing connection gives back (the bus is closing). */
  close(): void {
    this.closed = true;
    for (const e of this.waiting.splice(0)) this.settle(e, new Error("bus closed"));
  }

  private send(e: Entry): void {
    this.opts.send(e.group, e.payload).then(
      () => this.settle(e),
      (err: Error) => {
        if (this.opts.ready() || this.closed) return this.settle(e, err);
        // The connection went away before the command was written: wait for the next `ready`,
        // in its place among the others.
        const at = this.waiting.findIndex((w) => w.n > e.n);
        this.waiting.splice(at === -1 ? this.waiting.length : at, 0, e);
      },
    );
  }

  private settle(e: Entry, err?: Error): void {
    this.held -= e.size;
    if (err) e.reject(err);
    else e.resolve();
  }
}
