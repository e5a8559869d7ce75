// Readiness: whether this node should be sent new connections. It fails only for the node's own
// reasons: not listening (yet, or any more), draining, or its event loop stalled. (Probes are
// served only once start-up, migrations included, is done: a node starting up does not answer.) A shared
// dependency (PostgreSQL, Redis) being down is reported (in /readyz's body and as chat_db_up /
// chat_redis_up) but does not fail it: the outage is the same on every node, so failing
// readiness would take every node out of the load balancer at once, exactly when clients
// reconnect. A node without its database answers stored operations `unavailable` at once (the
// store guard) and serves typing and live events; clients retry.
import type { DependencyMonitor, DependencyState } from "./dependencies.ts";

export interface ReadinessReport {
  ready: boolean;
  /** The node's own checks; any false one (draining: true) makes it unready. */
  checks: { listening: boolean; draining: boolean; event_loop: boolean };
  /** Shared services, for operators: not part of `ready`. */
  dependencies: Record<string, DependencyState>;
  /** The longest the event loop was blocked in the last few seconds, in ms. */
  event_loop_delay_ms: number;
}

/** Samples how late a timer fires: the event loop's blocking, without a native histogram. */
class LoopDelay {
  private readonly samples: number[] = [];
  private expected = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly everyMs: number,
    private readonly keep: number,
  ) {}

  start(): void {
    this.expected = performance.now() + this.everyMs;
    this.timer = setInterval(() => {
      const now = performance.now();
      this.samples.push(Math.max(0, now - this.expected));
      if (this.samples.length > this.keep) this.samples.shift();
      this.expected = now + this.everyMs;
    }, this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The worst delay seen recently, counting a timer that is late right now. */
  get maxMs(): number {
    const current = this.timer ? Math.max(0, performance.now() - this.expected) : 0;
    return Math.round(Math.max(current, ...this.samples));
  }
}

export class Readiness {
  listening = false;
  draining = false;
  private readonly loop = new LoopDelay(250, 20); // the last 5 s

  constructor(
    private readonly dependencies: DependencyMonitor,
    private readonly maxLoopDelayMs: number,
  ) {}

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  report(): ReadinessReport {
    const delay = this.loop.maxMs;
    const checks = { listening: this.listening, draining: this.draining, event_loop: delay <= this.maxLoopDelayMs };
    return {
      ready: checks.listening && !checks.draining && checks.event_loop,
      checks,
      dependencies: { ...this.dependencies.state },
      event_loop_delay_ms: delay,
    };
  }
}
