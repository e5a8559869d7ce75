// Coalesced writes: calls made while a write is in flight are written together in the next one.
//
// Guarantees: at most one write in flight (one pooled connection, however many callers); the
// first call after a quiet spell is written at once, alone; each later write carries everything
// that came meanwhile, up to `maxItems`; every caller's promise settles with its own write's
// outcome (a failed write fails only its own items). Bounded: past `maxQueued` items waiting, a
// call is refused at once (the database is not keeping up; the caller decides what to drop).
export class Coalescer<T> {
  private queue: { item: T; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private running = false;

  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    private readonly maxItems = 1_000,
    private readonly maxQueued = 100_000,
  ) {}

  add(item: T): Promise<void> {
    if (this.queue.length >= this.maxQueued) return Promise.reject(new Error(`${this.maxQueued} writes already waiting`));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  /** Items waiting for a write. */
  get waiting(): number {
    return this.queue.length;
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxItems);
      try {
        await this.write(batch.map((b) => b.item));
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    this.running = false;
  }
}
