// The state of the services a node shares with every other node (PostgreSQL, Redis), probed in
// the background: /readyz and /metrics read the last result instead of reaching the database
// on every request (a public or hostile caller must not be able to turn probes into queries).
import { withDeadline } from "../deadline.ts";

export interface DependencyState {
  up: boolean;
  /** When `up` last changed (or the first probe). */
  since: Date;
  /** When the last probe finished. */
  checked_at: Date;
  /** Why the last probe failed. */
  error?: string;
}

export interface DependencyChecks {
  /** Resolves when the database answers. */
  database: () => Promise<void>;
  /** Whether the event bus is connected (a local reading, no round trip). */
  redis: () => boolean;
}

export class DependencyMonitor {
  private readonly states: Record<keyof DependencyChecks, DependencyState>;
  private timer: NodeJS.Timeout | null = null;
  private probing = false;

  constructor(
    private readonly checks: DependencyChecks,
    private readonly opts: { intervalMs: number; timeoutMs: number },
    private readonly onChange: (name: keyof DependencyChecks, state: DependencyState) => void = () => {},
  ) {
    const now = new Date();
    // The node migrated the database and connected the bus to start, so both begin up.
    this.states = { database: { up: true, since: now, checked_at: now }, redis: { up: true, since: now, checked_at: now } };
  }

  get state(): Readonly<Record<keyof DependencyChecks, DependencyState>> {
    return this.states;
  }

  start(): void {
    void this.probe();
    this.timer = setInterval(() => void this.probe(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round of probes; a round still running (a database that hangs) is not doubled. */
  async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const ms = this.opts.timeoutMs;
      const database = await withDeadline(this.checks.database(), ms, () => new Error(`no answer within ${ms} ms`)).then(
        () => undefined,
        (err: Error) => err.message || String(err),
      );
      this.record("database", database === undefined, database);
      this.record("redis", this.checks.redis(), "not connected");
    } finally {
      this.probing = false;
    }
  }

  private record(name: keyof DependencyChecks, up: boolean, error?: string): void {
    const s = this.states[name];
    const now = new Date();
    const changed = s.up !== up;
    this.states[name] = { up, since: changed ? now : s.since, checked_at: now, ...(up ? {} : { error }) };
    if (changed) this.onChange(name, this.states[name]);
  }
}
