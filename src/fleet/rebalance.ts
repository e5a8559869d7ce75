// Rebalancing after scale-up: a node holding more than its fair share of the fleet's sockets
// (the mean) × (1 + tolerance) closes sockets with 4012 ("reconnect elsewhere") until it is back
// at the mean, a bounded fraction of its sockets per second, so the fleet's reconnect rate stays
// bounded. Moving a handful of sockets is not worth a reconnect: a node sheds only when it is at
// least `minExcess` above the mean. Clients reconnect with jitter and resume with `?since=`, losing nothing; the load
// balancer's least-connections policy sends them to the emptier nodes.
import type { FleetView } from "./fleet.ts";

export interface RebalanceOptions {
  /** REBALANCE_TOLERANCE: how far above the mean a node may be before it sheds (0.1 = 10 %). */
  tolerance: number;
  /** REBALANCE_RATE: the largest fraction of its sockets a node closes per second. */
  ratePerSecond: number;
  /** REBALANCE_MIN_SOCKETS: a node sheds only when it holds at least this many more than the mean. */
  minExcess: number;
}

/**
 * How many sockets to close now, `tickMs` after the last decision (0 when balanced). Nothing is
 * shed while the fleet's total moves by more than the tolerance between two views (a connect or
 * disconnect storm, or the first view): the other nodes' counts are a heartbeat old, and a node
 * counted later than its peers during a ramp would otherwise look above the mean by the ramp alone.
 * Shedding into a storm would also only feed it.
 */
export function toShed(view: Omit<FleetView, "wire">, opts: RebalanceOptions, tickMs: number): number {
  if (view.size < 2 || view.total <= 0) return 0;
  if (view.moved === null || view.moved > Math.max(opts.minExcess, view.total * opts.tolerance)) return 0;
  const mean = view.total / view.size;
  if (view.mine <= mean * (1 + opts.tolerance)) return 0;
  const excess = Math.floor(view.mine - mean);
  if (excess < opts.minExcess) return 0;
  const budget = Math.max(1, Math.floor((view.mine * opts.ratePerSecond * tickMs) / 1000));
  return Math.max(0, Math.min(excess, budget));
}
