// Typing fan-out on one node: the cheapest broadcast the service does (no storage), so it shows
// the per-event cost of the gateway and bus alone. It warms up for 10 s: at 400 frames/s a fresh
// node is still compiling its typing path with TurboFan for the first seconds, which a 3 s
// warm-up measured as per-delivery cost (bench/performance-log.md, issue 11); the figure is a
// running node's.
import { headlineLatency, latencyMetrics, pick, type Scenario } from "../lib/scenario.ts";
import { groupName, runTraffic } from "../lib/traffic.ts";
import { runShape, trafficMetrics } from "./common.ts";

type Params = ReturnType<typeof runShape> & { groups: number; subscribers: number; publishers: number; rate: number };

export const typing: Scenario<Params> = {
  name: "typing",
  description: "typing fan-out on one node: G groups x S subscribers, P publishers per group at a total rate",
  metrics: [...latencyMetrics("", "delivery"), ...trafficMetrics],
  summary: ["p99_ms", "delivered_per_s", "server_cpu_s_per_1k"],
  params: (opts) => ({
    groups: pick(opts.sizes.groups, 20),
    subscribers: pick(opts.sizes.subscribers, 50),
    publishers: pick(opts.sizes.publishers, 1),
    rate: pick(opts.sizes.rate, 400),
    ...runShape(opts, 20, 10),
  }),
  nodes: () => 1,
  redis: () => false,
  async measure(target, p, runTag) {
    const groups = Array.from({ length: p.groups }, (_, g) => groupName(runTag, "typing", g));
    const m = await runTraffic(
      target,
      {
        ...p,
        publishers: [{ op: "typing", perGroup: p.publishers, rate: p.rate, inflight: 0 }],
        subscriberNodes: [0],
        publisherNodes: [0],
      },
      groups,
    );
    headlineLatency(m, "typing delivery");
    return m;
  },
};
