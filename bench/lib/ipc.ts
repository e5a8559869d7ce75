// Messages between the coordinator (bench/run.ts) and its client workers (bench/worker.ts).
// Times are CLOCK_MONOTONIC microseconds (see clock.ts), valid in every process of the run;
// histograms travel HdrHistogram-encoded (see histogram.ts).
import type { Op } from "./frames.ts";

/** A socket that only listens: measured receiver ("sub") or an idle connection ("idle"). */
export interface SocketSpec {
  url: string;
  group: number;
  localAddress?: string;
}

/** A socket that sends marked frames into its group. */
export interface PublisherSpec extends SocketSpec {
  id: number;
  op: Op;
  /** Frames per second (open loop); 0 = closed loop with `inflight` frames awaiting their ack. */
  rate: number;
  /**
   * Open loop: where in its period this publisher sends, 0..1. Publishers of one rate spread
   * evenly; in step they would send in bursts, and the run would measure queueing behind the
   * burst rather than the server.
   */
  phase: number;
  inflight: number;
}

export interface Plan {
  subscribers: SocketSpec[];
  publishers: PublisherSpec[];
  /** Subscribers only hold a connection open (a bare client, no parsing): the connections scenario. */
  idle: boolean;
  /** Keep per-interval histograms too, for `sample` (soak runs). */
  intervals: boolean;
  connectConcurrency: number;
}

export interface Window {
  /** Publishing starts. */
  startUs: number;
  /** Frames sent from here on are measured; earlier ones are warm-up. */
  measureFromUs: number;
  /** Publishing stops. */
  stopUs: number;
}

export type ToWorker =
  | { type: "connect"; plan: Plan }
  | { type: "start"; window: Window }
  | { type: "progress" }
  | { type: "sample" }
  | { type: "collect" }
  | { type: "close" };

export interface ConnectReport {
  /** Sockets this request opened. */
  connected: number;
  failed: number;
  /** Connected subscribers per group index: the fan-out each publish is expected to reach. */
  subscribersPerGroup: Record<number, number>;
  handshake: string;
  firstAttemptUs: number;
  lastOpenUs: number;
  /** This worker's CPU time while connecting: tells a slow server from a saturated generator. */
  cpuUs: number;
  errorSamples: string[];
}

export interface Counts {
  typing: number;
  create: number;
  acks: number;
}

export interface IntervalReport {
  delivered: Counts;
  latency: Record<keyof Counts, string>;
}

export interface WorkerReport {
  /** Measured deliveries (first receipt per subscriber) and acks. */
  delivered: Counts;
  latency: Record<keyof Counts, string>;
  /** How late frames left against their schedule: shows a generator that could not keep up. */
  sendLag: string;
  duplicates: number;
  /** Frames that reached a subscriber after a later frame of the same publisher. */
  reordered: number;
  /** Create events whose group seq was not the previous one + 1 at some subscriber. */
  seqViolations: number;
  errors: number;
  errorSamples: string[];
  /** Frames that were none of ours (neither a marked event, an ack nor an error). */
  unknown: number;
  unknownSamples: string[];
  /** Measured frames sent, per group and operation. */
  published: { group: number; op: Op; count: number }[];
  closedEarly: number;
  /** This worker's CPU time during the measured window. */
  cpuUs: number;
  wallUs: number;
}

export type FromWorker =
  | { type: "connected"; report: ConnectReport }
  | { type: "progress"; delivered: number; open: number }
  | { type: "sample"; report: IntervalReport }
  | { type: "report"; report: WorkerReport }
  | { type: "closed" };
