// Reconnect delays: exponential with "equal jitter" (half fixed, half random), so a fleet of
// clients dropped by one server restart spreads its reconnects out instead of stampeding, yet
// no client retries in a tight loop.

export interface BackoffOptions {
  /** First delay's ceiling. Default 500. */
  baseMs?: number;
  /** Largest delay. Default 10000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
}

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, opts: Required<BackoffOptions>, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxMs, opts.baseMs * opts.factor ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
