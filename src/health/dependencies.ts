// The state of the services a node shares with every other node (PostgreSQL, Redis), probed in
// the background: /readyz and /metrics read the last result instead of reaching the database
// on every request (a public or hostile caller must not be able to turn probes into queries).
//
// Guarantees: the bus's connection (a local reading) is read at every housekeeping tick, so Redis
// is reported down within a tick (250 ms). The database is asked in rounds every intervalMs (on
// the tick, so to within one; one round at a time, a hung database is not asked twice): it is
// reported down at most intervalMs + timeoutMs (+ two ticks) after it stops answering, and up
// again within a round of answering. A round asks the database only when the node has no proof as
// fresh that it answers: a store call that succeeded within the last tick is that proof (a busy
// node queries it constantly). The proof is that fresh so that it cannot delay the finding: a
// round that skipped its query stood on an answer less than a tick old, and the next round queries
// unless the database answered again meanwhile. So only a node whose store is idle (or nearly)
// sends the probe's `SELECT 1`, which, with PostgreSQL's own work for it (~1 ms of backend CPU),
// is what it pays per round.
import { withDeadline } from "../deadline.ts";
import { housekeeping, type Tick } from "./tick.ts";

export interface DependencyState {
  up: boolean;
  /** When `up` last changed (or the first probe). */
  since: Date;
  /** When the last probe finished. */
  checked_at: Date;
  /** Why the last probe failed. */
  error?: string;
}

export type Dependency = "database" | "redis";

/**
 * The node's database probe interval. Every second cost an idle node's PostgreSQL backend ~1.2 ms
 * of CPU a second (the query, and its statistics flushed after each idle second) and the node a
 * wake-up: 0.7 % of the typing bench's figure (bench/performance-log.md, issue 11: idle wake-ups).
 */
export const DATABASE_PROBE_MS = 2_000;

export interface DependencyChecks {
  /** Resolves when the database answers. */
  database: () => Promise<void>;
  /** When the node's store last got an answer (performance.now() ms; -Infinity for never): one within the last tick stands for the probe's query. */
  databaseAnsweredAt?: () => number;
  /** Whether the event bus is connected (a local reading, no round trip). */
  redis: () => boolean;
}

export class DependencyMonitor {
  private readonly states: Record<Dependency, DependencyState>;
  private off: (() => void) | null = null;
  private probing = false;
  /** performance.now() when the last round was started. */
  private lastRound = -Infinity;
  /** Rounds that asked the database, for tests and the performance log. */
  queries = 0;

  constructor(
    private readonly checks: DependencyChecks,
    private readonly opts: { intervalMs: number; timeoutMs: number; tick?: Tick },
    private readonly onChange: (name: Dependency, state: DependencyState) => void = () => {},
  ) {
    const now = new Date();
    // The node migrated the database and connected the bus to start, so both begin up.
    this.states = { database: { up: true, since: now, checked_at: now }, redis: { up: true, since: now, checked_at: now } };
  }

  get state(): Readonly<Record<Dependency, DependencyState>> {
    return this.states;
  }

  private get tick(): Tick {
    return this.opts.tick ?? housekeeping;
  }

  start(): void {
    if (this.off) return;
    const tick = this.tick;
    // A round is due on the first tick at least intervalMs after the last one started (half a
    // tick early rather than a whole tick late).
    const every = this.opts.intervalMs - tick.everyMs / 2;
    this.off = tick.on(() => {
      this.record("redis", this.checks.redis(), "not connected");
      if (performance.now() - this.lastRound >= every) void this.probe();
    });
    this.record("redis", this.checks.redis(), "not connected");
    void this.probe();
  }

  stop(): void {
    this.off?.();
    this.off = null;
  }

  /** One round of the database probe; a round still running (a database that hangs) is not doubled. */
  async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    const started = performance.now();
    this.lastRound = started;
    try {
      const ms = this.opts.timeoutMs;
      const answeredAt = this.checks.databaseAnsweredAt?.() ?? -Infinity;
      let database: string | undefined;
      if (started - answeredAt > this.tick.everyMs) {
        this.queries++;
        database = await withDeadline(this.checks.database(), ms, () => new Error(`no answer within ${ms} ms`)).then(
          () => undefined,
          (err: Error) => err.message || String(err),
        );
      }
      this.record("database", database === undefined, database);
    } finally {
      this.probing = false;
    }
  }

  private record(name: Dependency, up: boolean, error?: string): void {
    const s = this.states[name];
    const now = new Date();
    const changed = s.up !== up;
    this.states[name] = { up, since: changed ? now : s.since, checked_at: now, ...(up ? {} : { error }) };
    if (changed) this.onChange(name, this.states[name]);
  }
}
