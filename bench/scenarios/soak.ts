// Moderate mixed traffic for a long time, sampled per interval: the figures should stay flat.
// Rising latency or RSS over the run points at leaks, growing queues or unbounded caches.
import type { IntervalPoint } from "../lib/results.ts";
import { round } from "../lib/results.ts";
import { slope } from "../lib/stats.ts";
import { headlineLatency, latencyMetrics, pick, type Scenario } from "../lib/scenario.ts";
import { groupName, runTraffic } from "../lib/traffic.ts";
import { runShape, trafficMetrics } from "./common.ts";

type Params = ReturnType<typeof runShape> & {
  groups: number;
  subscribers: number;
  rate: number;
  createRate: number;
  interval: number;
};

export const soak: Scenario<Params> = {
  name: "soak",
  description: "mixed typing and create traffic for a long run (default 10 min), sampled per interval",
  metrics: [
    ...latencyMetrics("", "delivery"),
    { key: "ack_p99_ms", label: "ack p99", unit: "ms", better: "lower" },
    { key: "p99_drift", label: "p99 drift (last third ÷ first third)", unit: "×", better: "lower" },
    { key: "rss_growth_mb", label: "RSS growth", unit: "MB", better: "lower" },
    { key: "rss_slope_mb_per_min", label: "RSS slope", unit: "MB/min", better: "lower" },
    ...trafficMetrics,
  ],
  summary: ["p99_ms", "p99_drift", "rss_slope_mb_per_min"],
  params: (opts) => ({
    groups: pick(opts.sizes.groups, 10),
    subscribers: pick(opts.sizes.subscribers, 20),
    rate: pick(opts.sizes.rate, 100),
    createRate: pick(opts.sizes["create-rate"], 20),
    interval: pick(opts.sizes.interval, 10),
    ...runShape(opts, 600),
  }),
  nodes: () => 1,
  redis: () => false,
  async measure(target, p, runTag) {
    const groups = Array.from({ length: p.groups }, (_, g) => groupName(runTag, "soak", g));
    // Sampling at least five times keeps a short --duration meaningful.
    const sampleEvery = Math.max(1, Math.min(p.interval, p.duration / 5));
    const m = await runTraffic(
      target,
      {
        ...p,
        publishers: [
          { op: "typing", perGroup: 1, rate: p.rate, inflight: 0 },
          { op: "create", perGroup: 1, rate: p.createRate, inflight: 0 },
        ],
        subscriberNodes: [0],
        publisherNodes: [0],
        sampleEvery,
      },
      groups,
    );
    headlineLatency(m, "typing delivery");
    headlineLatency(m, "create ack", "ack_");
    Object.assign(m.headline, flatness(m.intervals ?? []));
    return m;
  },
};

function flatness(points: IntervalPoint[]): Record<string, number> {
  if (points.length < 2) return {};
  const third = Math.max(1, Math.floor(points.length / 3));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const early = mean(points.slice(0, third).map((p) => p.p99));
  const late = mean(points.slice(-third).map((p) => p.p99));
  return {
    p99_drift: early > 0 ? round(late / early, 2) : 0,
    rss_growth_mb: round(points.at(-1)!.rssMb - points[0]!.rssMb, 1),
    rss_slope_mb_per_min: round(slope(points.map((p) => [p.t / 60, p.rssMb] as const)), 2),
  };
}
