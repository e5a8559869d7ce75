// The write scheduler: per-group order over a bounded pool of concurrent batches ("group
// commit" without making unrelated groups wait).
//
// Guarantee: a group's jobs run in the order they were submitted, one batch at a time for that
// group: a job starts only after every earlier job of its group has settled. Across groups
// there is no order. At most `concurrency` batches run at once. Consecutive batchable items of
// any number of groups are written together in one batch; a solo job (an update, a delete)
// runs alone but holds up only its own group. A group in flight is in exactly one batch, so two
// batches of this node never wait on each other's row locks.
//
// At low load an item is written at once, alone; under load the batches grow with the backlog,
// so throughput rises without a fixed delay. Ready groups are served first come, first served.
//
// One batch at a time is the fast path. A batch has a fixed cost in the database (one call, its
// plan and its commit: ~0.5-1 ms of PostgreSQL CPU, against ~35 us per item), and concurrent
// batches contend in PostgreSQL (the groups' rows share a page or two that every batch updates):
// at 9,000 creates/s, four batches in flight made PostgreSQL need 0.95-1.1 cores and ack p99
// 0.4-0.7 s, one at a time 0.4 cores and p99 24 ms, with ~50 items per batch either way. So:
// - nothing in flight: a batch starts once none started within `lingerMs` (a lone write goes at
//   once; under load, batches at most every `lingerMs`, so they carry what came meanwhile);
// - a batch in flight: another starts only once the oldest waiting group has waited `stallMs`
//   (a lock wait or a slow write holds up unrelated groups for at most that long) or `fillBatch`
//   items wait, up to `concurrency` batches.

import { ChatError } from "../protocol/index.ts";

export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

interface Pending<I, O> {
  /** A batchable item, or a job that runs alone. */
  job: { item: I } | { solo: () => Promise<unknown> };
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
  queuedAt: number;
  weight: number;
}

export interface SchedulerOptions<I> {
  /** Batches (or solo jobs) in flight at once. */
  concurrency: number;
  /** A batch starts whenever this many items wait. */
  fillBatch?: number;
  /** With nothing in flight, batches start at most this often (ms). 0: every batch starts at once, up to `concurrency`. */
  lingerMs?: number;
  /** With a batch in flight, another starts once the oldest waiting group has waited this long (ms). */
  stallMs?: number;
  /** Told each batch's size as it starts. */
  onBatch?: ((items: number) => void) | undefined;
  /** Items per batch at most. */
  maxBatch: number;
  /** A batch stops growing once its items weigh this much (bytes of payload), so one huge batch cannot stall the process. */
  maxBatchWeight: number;
  weigh: (item: I) => number;
  /**
   * A job that waited longer than this (behind a write that hangs) is refused unrun: its caller
   * has been told `unavailable` by then, and must not see it applied later.
   */
  maxWaitMs: number;
  /** The clock (ms); tests pass their own. */
  now?: () => number;
}

export class GroupScheduler<I, O> {
  /** Queued jobs of each group with any, in submission order. */
  private readonly queues = new Map<string, Pending<I, O>[]>();
  /** Groups with queued jobs and nothing in flight, in the order they became ready. */
  private readonly ready = new Set<string>();
  /** Groups with a batch or solo job in flight. */
  private readonly busy = new Set<string>();
  private running = 0;
  /** When the last batch or solo job started. */
  private lastStart = -Infinity;
  /** Items queued and not yet in flight. */
  private waiting = 0;
  /** Re-checks the linger of the oldest waiting group. */
  private lingerTimer: NodeJS.Timeout | null = null;
  private lingerAt = 0;
  /** When each ready group became ready (its wait for a batch counts from there). */
  private readonly readySince = new Map<string, number>();
  private readonly now: () => number;

  constructor(
    /** Writes a batch; returns one outcome per item, in order. Throwing fails every item. */
    private readonly write: (items: I[]) => Promise<Settled<O>[]>,
    private readonly opts: SchedulerOptions<I>,
  ) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Batches and solo jobs in flight. */
  get inFlight(): number {
    return this.running;
  }

  /** Jobs waiting (not yet in flight). */
  get queued(): number {
    return this.waiting;
  }

  submit(group: string, item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.enqueue(group, { job: { item }, resolve, reject, queuedAt: this.now(), weight: this.opts.weigh(item) });
    });
  }

  /** Runs `job` after every job of `group` submitted before it, and before any submitted after it. */
  solo<T>(group: string, job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.enqueue(group, { job: { solo: job }, resolve: resolve as (v: unknown) => void, reject, queuedAt: this.now(), weight: 0 });
    });
  }

  private enqueue(group: string, p: Pending<I, O>): void {
    let q = this.queues.get(group);
    if (!q) this.queues.set(group, (q = []));
    q.push(p);
    this.waiting++;
    if (!this.busy.has(group)) this.markReady(group);
    this.pump();
  }

  /** Refuses a group's jobs that waited too long; they are a prefix of its queue. */
  private dropStale(group: string, q: Pending<I, O>[]): void {
    const stale = this.now() - this.opts.maxWaitMs;
    let n = 0;
    while (n < q.length && q[n]!.queuedAt < stale) n++;
    this.waiting -= n;
    for (const p of q.splice(0, n)) p.reject(new ChatError("unavailable", "storage is unavailable, try again"));
    if (q.length === 0) {
      this.queues.delete(group);
      this.unready(group);
    }
  }

  private pump(): void {
    while (this.running < this.opts.concurrency && this.ready.size > 0) {
      if (!this.mayStart()) return this.armLinger();
      const started = this.startNext();
      if (!started) break;
    }
  }

  /** Whether a batch may start now (see the top of the file). */
  private mayStart(): boolean {
    const linger = this.opts.lingerMs ?? 0;
    if (linger <= 0 || this.waiting >= (this.opts.fillBatch ?? Infinity)) return true;
    return this.now() >= this.startAt();
  }

  /** When the next batch may start, by time alone. */
  private startAt(): number {
    const linger = this.opts.lingerMs ?? 0;
    const oldest = this.oldestReady() ?? Infinity;
    if (this.running === 0) return Math.min(this.lastStart + linger, oldest + linger);
    return oldest + (this.opts.stallMs ?? linger);
  }

  /** When the group that has been ready longest became ready (Sets keep insertion order). */
  private oldestReady(): number | undefined {
    for (const group of this.ready) return this.readySince.get(group);
    return undefined;
  }

  /** Wakes the pump when the next batch may start by time; an earlier time replaces a later one. */
  private armLinger(): void {
    if (this.ready.size === 0) return;
    const at = this.startAt();
    if (this.lingerTimer) {
      if (this.lingerAt <= at) return;
      clearTimeout(this.lingerTimer);
    }
    this.lingerAt = at;
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = null;
      this.pump();
    }, Math.max(0, at - this.now()));
  }

  private markReady(group: string): void {
    if (this.ready.has(group)) return;
    this.ready.add(group);
    this.readySince.set(group, this.now());
  }

  private unready(group: string): void {
    this.ready.delete(group);
    this.readySince.delete(group);
  }

  /** Starts one batch or solo job from the ready groups; false when nothing could start. */
  private startNext(): boolean {
    const groups: string[] = [];
    const batch: Pending<I, O>[] = [];
    let weight = 0;
    for (const group of this.ready) {
      const q = this.queues.get(group)!;
      this.dropStale(group, q);
      if (q.length === 0) continue;
      const head = q[0]!;
      if ("solo" in head.job) {
        if (batch.length > 0) continue; // runs alone, in a later turn
        q.shift();
        this.waiting--;
        this.lastStart = this.now();
        this.take(group, q);
        this.run([group], head.job.solo().then(head.resolve as (v: unknown) => void, head.reject));
        return true;
      }
      let n = 0;
      while (n < q.length && batch.length < this.opts.maxBatch && (batch.length === 0 || weight < this.opts.maxBatchWeight)) {
        const p = q[n]!;
        if ("solo" in p.job) break;
        batch.push(p);
        weight += p.weight;
        n++;
      }
      if (n === 0) break; // the batch is full
      q.splice(0, n);
      this.waiting -= n;
      this.take(group, q);
      groups.push(group);
      if (batch.length >= this.opts.maxBatch || weight >= this.opts.maxBatchWeight) break;
    }
    if (batch.length === 0) return false;
    this.opts.onBatch?.(batch.length);
    this.lastStart = this.now();
    const done = this.write(batch.map((p) => (p.job as { item: I }).item)).then(
      (outcomes) =>
        batch.forEach((p, i) => {
          const o = outcomes[i]!;
          if (o.ok) p.resolve(o.value);
          else p.reject(o.error);
        }),
      (error) => batch.forEach((p) => p.reject(error)),
    );
    this.run(groups, done);
    return true;
  }

  /** Marks a group in flight (no longer ready); an emptied queue is forgotten. */
  private take(group: string, q: Pending<I, O>[]): void {
    this.unready(group);
    this.busy.add(group);
    if (q.length === 0) this.queues.delete(group);
  }

  private run(groups: string[], done: Promise<void>): void {
    this.running++;
    void done.finally(() => {
      this.running--;
      for (const g of groups) {
        this.busy.delete(g);
        if (this.queues.has(g)) this.markReady(g); // back of the line: groups waiting longer go first
      }
      this.pump();
    });
  }
}
