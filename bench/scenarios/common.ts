// Figures every publish/subscribe scenario reports, after its own latency figures.
import type { Options } from "../lib/args.ts";
import type { Metric } from "../lib/results.ts";
import { pick } from "../lib/scenario.ts";

export const trafficMetrics: Metric[] = [
  { key: "delivered_per_s", label: "delivered", unit: "events/s", better: "higher" },
  { key: "loss_pct", label: "loss", unit: "%", better: "lower" },
  { key: "duplicates", label: "duplicates", unit: "", better: "lower" },
  { key: "server_cpu_s_per_1k", label: "server CPU per 1k delivered", unit: "s", better: "lower" },
  { key: "server_cpu_pct", label: "server CPU", unit: "%", better: "lower" },
  { key: "server_rss_mb", label: "server RSS", unit: "MB", better: "lower" },
  { key: "db_cpu_pct", label: "PostgreSQL CPU (this database)", unit: "%", better: "lower" },
  { key: "generator_cpu_max_pct", label: "busiest client worker CPU", unit: "%", better: "lower" },
  { key: "machine_busy_pct", label: "whole machine CPU busy", unit: "%", better: "lower" },
];

/** Run-shape parameters shared by the traffic scenarios (`warmup`: seconds of traffic before measuring, 3 unless a scenario says). */
export function runShape(opts: Options, duration: number, warmup = 3) {
  return {
    warmup: pick(opts.sizes.warmup, warmup),
    duration: pick(opts.sizes.duration, duration),
    workers: opts.workers,
    connectConcurrency: pick(opts.sizes.concurrency, 100),
  };
}
