// Delivers the webhook outbox to WEBHOOK_URL. Every node runs one; they share the work through
// the outbox's group leases (see src/store/outbox.ts): a group is delivered by one node at a
// time, its events one after the other in seq order, each a signed POST that must answer 2xx
// within the timeout. A failure backs the group off exponentially (capped) and retries the same
// event; after `maxAttempts` the event is dead-lettered and the group moves on. Other groups are
// not held up by a failing one. A node that dies mid-delivery leaves its lease to expire, and
// another node delivers those events again: at least once, de-duplicable by X-Chatroom-Delivery.
import { randomUUID } from "node:crypto";
import type { ChatStore } from "../store/store.ts";
import type { OutboxEvent, OutboxRow, WebhookOutbox } from "../store/outbox.ts";
import type { WebhookMetrics } from "../metrics/backend-metrics.ts";
import { poster, type Poster } from "./post.ts";
import { DELIVERY_HEADER, deliveryId, fromLog, SIGNATURE_HEADER, sign, webhookEvent } from "./payload.ts";

export interface DispatcherOptions {
  url: string;
  secret: string;
  timeoutMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Groups this node delivers at once. */
  concurrency: number;
  /** How often the outbox is polled when nothing wakes the dispatcher. */
  pollMs: number;
  /** Events of one group leased at once (delivered one after the other). */
  perGroup: number;
}

export interface DispatcherLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Exponential backoff with a cap and ±20 % jitter, so failing groups do not retry in lockstep. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  const raw = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(raw * (0.8 + Math.random() * 0.4));
}

export class WebhookDispatcher {
  readonly owner = `node-${randomUUID()}`;
  private running = false;
  private pumping = false;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly inflight = new Map<string, Promise<void>>();
  /** Aborts the POSTs under way on shutdown (their events stay in the outbox for the next claimer). */
  private readonly stopping = new AbortController();
  private readonly http: Poster;
  private claimFailing = false;

  constructor(
    readonly outbox: WebhookOutbox,
    private readonly store: Pick<ChatStore, "eventsSince">,
    private readonly opts: DispatcherOptions,
    private readonly metrics: WebhookMetrics,
    private readonly log: DispatcherLog,
  ) {
    this.http = poster(opts.url, opts.concurrency);
  }

  /** A lease outlives the longest delivery it may cover (one POST's timeout) with room to spare. */
  private get leaseMs(): number {
    return this.opts.timeoutMs * 2 + 2_000;
  }

  start(): void {
    this.running = true;
    this.kick();
  }

  /**
   * Something was stored: look at the outbox now rather than at the next poll. A group this node
   * is delivering needs nothing: its delivery looks again when it ends.
   */
  kick(group?: string): void {
    if (!this.running || (group !== undefined && this.inflight.has(group))) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    try {
      do {
        this.again = false;
        const room = this.opts.concurrency - this.inflight.size;
        if (room <= 0) break;
        // The lease runs from the database's clock at the claim: count it from before asking.
        const asked = performance.now();
        const claimed = await this.outbox.claim(this.owner, { groups: room, perGroup: this.opts.perGroup, leaseMs: this.leaseMs });
        for (const rows of claimed) {
          const group = rows[0]!.group;
          const run = this.deliverGroup(group, rows, asked + this.leaseMs)
            .catch((err) => this.log.error({ err, group }, "webhook delivery failed unexpectedly"))
            .finally(() => {
              this.inflight.delete(group);
              this.kick();
            });
          this.inflight.set(group, run);
        }
        if (claimed.length === room) this.again = true; // there may be more
      } while (this.again && this.running);
      this.claimFailing = false;
    } catch (err) {
      // Once per outage, not every poll: the database being down is already on chat_db_up.
      if (!this.claimFailing) this.log.warn({ err }, "webhook outbox claim failed; retrying at every poll");
      this.claimFailing = true;
    } finally {
      this.pumping = false;
      if (this.running) this.timer = setTimeout(() => this.kick(), this.opts.pollMs);
    }
  }

  /** Delivers a group's leased rows in seq order, stopping at the first failure or when the lease runs short. */
  private async deliverGroup(group: string, rows: OutboxRow[], leaseEnds: number): Promise<void> {
    // Rows carry their event as stored; rows written before that (event null) read the event log,
    // where the message is in its current state.
    const events = new Map<number, OutboxEvent>();
    const old = rows.filter((r) => r.event === null);
    if (old.length > 0) {
      const first = old[0]!.seq;
      const last = old[old.length - 1]!.seq;
      for (const e of await this.store.eventsSince({ group, after: first - 1, until: last, limit: last - first + 1 })) events.set(e.seq, fromLog(e));
    }
    for (const r of rows) if (r.event) events.set(r.seq, r.event);
    const done: number[] = [];
    for (const row of rows) {
      // Never start a POST that could outlast the lease: another node would deliver it too.
      if (!this.running || performance.now() + this.opts.timeoutMs + 1_000 > leaseEnds) break;
      const event = events.get(row.seq);
      const error = event ? await this.post(group, row.seq, event, row.storedAt) : `event ${row.seq} of ${group} is not in the event log`;
      if (this.stopping.signal.aborted) break; // not the receiver's fault: no attempt counted
      if (error === null) {
        done.push(row.seq);
        continue;
      }
      const dead = row.attempts + 1 >= this.opts.maxAttempts;
      const retryIn = backoffMs(row.attempts, this.opts.backoffBaseMs, this.opts.backoffMaxMs);
      this.metrics.deliveries.inc({ result: dead ? "dead" : "failed" });
      if (dead) this.log.error({ group, seq: row.seq, attempts: row.attempts + 1, error }, "webhook dead-lettered after its last attempt");
      else this.log.warn({ group, seq: row.seq, attempt: row.attempts + 1, retryInMs: retryIn, error }, "webhook delivery failed; will retry");
      if (done.length > 0) await this.outbox.delivered(this.owner, group, done);
      await this.outbox.failed(this.owner, group, row.seq, error, retryIn, dead);
      return;
    }
    await this.outbox.delivered(this.owner, group, done);
  }

  /** One POST; null on 2xx, else what went wrong. */
  private async post(group: string, seq: number, event: OutboxEvent, storedAt: Date): Promise<string | null> {
    const body = JSON.stringify(webhookEvent(group, seq, event));
    const end = this.metrics.duration.startTimer();
    try {
      const status = await this.http.post(
        body,
        {
          "Content-Type": "application/json",
          "User-Agent": "chatroom-webhooks/1",
          [SIGNATURE_HEADER]: sign(this.opts.secret, body),
          [DELIVERY_HEADER]: deliveryId(group, seq),
        },
        this.opts.timeoutMs,
        this.stopping.signal,
      );
      if (status < 200 || status > 299) return `HTTP ${status}`;
      this.metrics.deliveries.inc({ result: "ok" });
      this.metrics.lag.observe(Math.max(0, Date.now() - storedAt.getTime()) / 1000);
      return null;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return e.code ? `${e.message} (${e.code})` : e.message;
    } finally {
      end();
    }
  }

  /** Stops claiming, aborts the POSTs under way, and frees this node's leases (their events go to the next claimer). */
  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await Promise.allSettled([...this.inflight.values()]);
    await this.outbox.releaseAll(this.owner).catch(() => {});
    this.http.close();
  }
}
