// The node's housekeeping tick: one timer for the periodic work that needs no timer of its own
// (the event-loop samplers behind /readyz and the lag gauges, the dependency probe), instead of
// one timer each. Every wake-up of a process that has nothing else to do costs ~0.15 ms of CPU
// on our VMs; the node used to wake 16 times a second at idle (a 100 ms lag sampler, a 250 ms
// readiness sampler, the database probe) where the bare uWS baseline wakes once
// (bench/performance-log.md, issue 11: idle wake-ups).
//
// Guarantees: while anything listens, each listener is called once per tick, in the order they
// came, with the tick's lateness: how long after its due time the event loop got to it (ms; the
// loop's blocking, to within a millisecond). A blocked loop delays ticks and never queues them:
// after a block, one tick runs with the block's lateness and the next is due TICK_MS later. The
// timer is unref'd (it never keeps a process alive) and runs only while someone listens.
// Listeners must not throw (each records a number or starts work whose failure it handles).

/** How often the tick runs. Event-loop blocks are measured at this resolution (see Tick). */
export const TICK_MS = 250;

export type TickListener = (lateMs: number) => void;

export class Tick {
  private readonly listeners: TickListener[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** performance.now() at which the running timer is due. */
  private due = 0;

  constructor(readonly everyMs: number) {}

  /** Adds a listener from the next tick on; the returned function removes it (once is enough, twice is harmless). */
  on(listener: TickListener): () => void {
    const entry: TickListener = (late) => listener(late);
    this.listeners.push(entry);
    if (this.timer === null) this.arm();
    return () => {
      const i = this.listeners.indexOf(entry);
      if (i < 0) return;
      this.listeners.splice(i, 1);
      if (this.listeners.length === 0 && this.timer !== null) {
        clearTimeout(this.timer);
        this.timer = null;
      }
    };
  }

  /** Whether its timer is set (someone listens). */
  get running(): boolean {
    return this.timer !== null;
  }

  /**
   * How late the tick now pending is, read between ticks (0 while it is not due yet, or when
   * nothing listens). A block still going on cannot be read (nothing runs), but the code that
   * reads this may run in the same loop turn as the tick that is late.
   */
  get lateMs(): number {
    return this.timer === null ? 0 : Math.max(0, performance.now() - this.due);
  }

  private arm(): void {
    this.due = performance.now() + this.everyMs;
    this.timer = setTimeout(() => this.fire(), this.everyMs);
    this.timer.unref();
  }

  private fire(): void {
    const now = performance.now();
    const late = Math.max(0, now - this.due);
    // Re-armed before the listeners run, from now: a late tick is followed by one a whole
    // period later, not by a burst that catches up.
    this.due = now + this.everyMs;
    this.timer!.refresh();
    for (const listener of [...this.listeners]) listener(late);
  }
}

/**
 * The process's tick. The event loop is the process's, so one sampler serves every node a test
 * runs in one process, and every metrics registry.
 */
export const housekeeping = new Tick(TICK_MS);
