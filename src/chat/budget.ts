// Two small accounting tools the node's bounds are built from. A ByteBudget is a node-wide pool
// of bytes shared by many holders (pending input of every socket, events held for resuming
// subscriptions): a holder takes before it keeps bytes and gives back exactly what it took, so
// `used` is what the node holds right now. Slots bound how many replays read and serialise at
// once: a replay takes a slot per page, so a long replay cannot starve the ones behind it.

export class ByteBudget {
  private usedBytes = 0;

  constructor(readonly limitBytes: number) {}

  get used(): number {
    return this.usedBytes;
  }

  /** Takes `bytes` if they fit under the limit; false (and nothing taken) when they do not. */
  take(bytes: number): boolean {
    if (this.usedBytes + bytes > this.limitBytes) return false;
    this.usedBytes += bytes;
    return true;
  }

  give(bytes: number): void {
    this.usedBytes -= bytes;
  }
}

export class Slots {
  private running = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    readonly max: number,
    private readonly onChange: (running: number, waiting: number) => void = () => {},
  ) {}

  /** Runs `fn` once a slot is free (first come, first served); `waited` is told when it had to queue. */
  async run<T>(fn: () => Promise<T>, waited: () => void = () => {}): Promise<T> {
    if (this.running < this.max) this.running++;
    else {
      waited();
      await new Promise<void>((resolve) => {
        this.queue.push(resolve);
        this.onChange(this.running, this.queue.length);
      });
    }
    this.onChange(this.running, this.queue.length);
    try {
      return await fn();
    } finally {
      // A freed slot passes straight to the next in line, so `running` never exceeds `max`.
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
      this.onChange(this.running, this.queue.length);
    }
  }
}
