// An ordered write queue with natural batching ("group commit"). Jobs run strictly in the order
// they were submitted, one batch at a time. Consecutive batchable jobs are written together;
// any other job runs alone. While a batch is being written new jobs wait and are then written
// together, so at low load a job is written at once, alone, and under load the batch grows with
// the backlog: throughput rises without a fixed delay.
import { ChatError } from "../protocol/index.ts";

export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

interface Pending<I, O> {
  /** A batchable item, or a job that runs alone. */
  job: { item: I } | { solo: () => Promise<unknown> };
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
  queuedAt: number;
}

export class OrderedBatcher<I, O> {
  private queue: Pending<I, O>[] = [];
  private running = false;

  constructor(
    /** Writes a batch; returns one outcome per item, in order. Throwing fails every item. */
    private readonly write: (items: I[]) => Promise<Settled<O>[]>,
    private readonly maxBatch: number,
    /** A batch stops growing once its items weigh this much (bytes of payload), so one huge batch cannot stall the process. */
    private readonly maxBatchWeight: number,
    private readonly weigh: (item: I) => number,
    /**
     * A job that waited longer than this (behind a write that hangs) is refused unrun: its caller
     * has been told `unavailable` by then, and must not see it applied later.
     */
    private readonly maxWaitMs: number,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ job: { item }, resolve, reject, queuedAt: performance.now() });
      this.pump();
    });
  }

  /** Runs `job` after everything submitted before it, and before anything submitted after it. */
  solo<T>(job: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ job: { solo: job }, resolve: resolve as (v: unknown) => void, reject, queuedAt: performance.now() });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running) return;
    const stale = performance.now() - this.maxWaitMs;
    if (this.queue.length > 0 && this.queue[0]!.queuedAt < stale) {
      // Jobs are queued in time order: the stale ones are a prefix.
      const n = this.queue.findIndex((p) => p.queuedAt >= stale);
      for (const p of this.queue.splice(0, n === -1 ? this.queue.length : n)) {
        p.reject(new ChatError("unavailable", "storage is unavailable, try again"));
      }
    }
    if (this.queue.length === 0) return;
    this.running = true;
    const head = this.queue[0]!;
    let done: Promise<void>;
    if ("solo" in head.job) {
      this.queue.shift();
      done = head.job.solo().then(head.resolve as (v: unknown) => void, head.reject);
    } else {
      let n = 1;
      let weight = this.weigh((head.job as { item: I }).item);
      while (n < this.queue.length && n < this.maxBatch && weight < this.maxBatchWeight) {
        const next = this.queue[n]!.job;
        if ("solo" in next) break;
        weight += this.weigh(next.item);
        n++;
      }
      const batch = this.queue.splice(0, n);
      done = this.write(batch.map((p) => (p.job as { item: I }).item)).then(
        (outcomes) =>
          batch.forEach((p, i) => {
            const o = outcomes[i]!;
            if (o.ok) p.resolve(o.value);
            else p.reject(o.error);
          }),
        (error) => batch.forEach((p) => p.reject(error)),
      );
    }
    void done.finally(() => {
      this.running = false;
      this.pump();
    });
  }
}
