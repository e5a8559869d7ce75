// Readiness: whether this node should be sent new connections. It fails only for the node's own
// reasons: not listening (yet, or any more), draining, or its event loop stalled. (Probes are
// served only once start-up, migrations included, is done: a node starting up does not answer.) A shared
// dependency (PostgreSQL, Redis) being down is reported (in /readyz's body and as chat_db_up /
// chat_redis_up) but does not fail it: the outage is the same on every node, so failing
// readiness would take every node out of the load balancer at once, exactly when clients
// reconnect. A node without its database answers stored operations `unavailable` at once (the
// store guard) and serves typing and live events; clients retry.
import type { DependencyMonitor, DependencyState } from "./dependencies.ts";
import { housekeeping, type Tick } from "./tick.ts";

export interface ReadinessReport {
  ready: boolean;
  /** The node's own checks; any false one (draining: true) makes it unready. */
  checks: { listening: boolean; draining: boolean; event_loop: boolean };
  /** Shared services, for operators: not part of `ready`. */
  dependencies: Record<string, DependencyState>;
  /** The longest the event loop was blocked in the last few seconds, in ms. */
  event_loop_delay_ms: number;
}

/**
 * The event loop's blocking over the last WINDOW_MS, from how late the housekeeping tick ran (its
 * resolution: a block of B ms reads as B − TICK_MS to B).
 */
class LoopDelay {
  private readonly samples: number[] = [];
  private off: (() => void) | null = null;

  constructor(
    private readonly tick: Tick,
    private readonly keep: number,
  ) {}

  start(): void {
    this.off ??= this.tick.on((late) => {
      this.samples.push(late);
      if (this.samples.length > this.keep) this.samples.shift();
    });
  }

  stop(): void {
    this.off?.();
    this.off = null;
  }

  /** The worst delay seen recently, counting a tick that is late right now. */
  get maxMs(): number {
    const current = this.off ? this.tick.lateMs : 0;
    return Math.round(Math.max(current, ...this.samples));
  }
}

/** How far back readiness looks for a blocked event loop. */
const WINDOW_MS = 5_000;

export class Readiness {
  listening = false;
  draining = false;
  private readonly loop: LoopDelay;

  constructor(
    private readonly dependencies: DependencyMonitor,
    private readonly maxLoopDelayMs: number,
    tick: Tick = housekeeping,
  ) {
    this.loop = new LoopDelay(tick, Math.ceil(WINDOW_MS / tick.everyMs));
  }

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
