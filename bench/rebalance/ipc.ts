// Messages between the rebalance scenario (bench/scenarios/rebalance.ts) and its client workers
// (bench/rebalance/worker.ts). Times are CLOCK_MONOTONIC microseconds (bench/lib/clock.ts).

export interface ReceiverSpec {
  group: string;
  user: string;
}

export interface SenderSpec {
  group: string;
  /** Publisher number: the first part of every frame's mark. */
  id: number;
  /** Creates per second (open loop). */
  rate: number;
  /** Where in its period this sender sends, 0..1 (senders of one rate spread evenly). */
  phase: number;
}

export type ToRebalanceWorker =
  | { type: "open"; wsBase: string; receivers: ReceiverSpec[]; senders: SenderSpec[]; concurrency: number }
  | { type: "start"; atUs: number }
  | { type: "stop-sending" }
  | { type: "progress" }
  | { type: "collect" }
  | { type: "close" };

export interface ReceiverResult {
  group: string;
  /** The last seq taken in order (what `since` resumes from). */
  last: number;
  duplicates: number;
  /** Events that skipped ahead of last + 1. */
  gaps: number;
}

export interface RebalanceWorkerReport {
  receivers: ReceiverResult[];
  /** First arrival latency per second of sending (key: floor(sentUs / 1e6)), HdrHistogram-encoded. */
  latencyBySecond: Record<string, string>;
  /** The same for the events receivers got from a resume's replay (before `resumed`), a subset of the above. */
  replayedBySecond: Record<string, string>;
  /** Every receiver reconnect that resumed: [closed, opened, `resumed` received] µs, and the events replayed. */
  resumes: [number, number, number, number][];
  ackLatency: string;
  /** Monotonic µs of every reconnect that opened (receivers and senders). */
  reconnectsUs: number[];
  /** Close codes the server sent, with counts. */
  closeCodes: Record<string, number>;
  /** Reconnect attempts that failed (refused upgrade, reset) and were retried. */
  failedReconnects: number;
  sent: number;
  acked: number;
  /** Creates still unacknowledged per sender group. */
  unacked: number;
  errors: number;
  errorSamples: string[];
  /** Acknowledged creates per group, the number of events each group should hold. */
  ackedPerGroup: Record<string, number>;
}

export type FromRebalanceWorker =
  | { type: "opened"; failed: number; errorSamples: string[] }
  | { type: "progress"; delivered: number; unacked: number; open: number }
  | { type: "report"; report: RebalanceWorkerReport }
  | { type: "closed" };
