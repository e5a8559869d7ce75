// Persisted creates on one node: each one is stored, numbered and acknowledged, so this is where
// the database shows. Closed loop by default (each publisher keeps --inflight creates awaiting
// their ack) to find the sustainable creates/s; --rate N makes it open loop at N creates/s.
import { headlineLatency, latencyMetrics, pick, type Scenario } from "../lib/scenario.ts";
import { groupName, runTraffic } from "../lib/traffic.ts";
import { runShape, trafficMetrics } from "./common.ts";

type Params = ReturnType<typeof runShape> & {
  groups: number;
  subscribers: number;
  publishers: number;
  rate: number;
  inflight: number;
};

export const create: Scenario<Params> = {
  name: "create",
  description: "persisted creates on one node: ack latency and creates/s, fanned out to S subscribers per group",
  metrics: [
    { key: "acks_per_s", label: "creates acked", unit: "/s", better: "higher" },
    ...latencyMetrics("ack_", "ack"),
    { key: "p99_ms", label: "delivery p99", unit: "ms", better: "lower" },
    ...trafficMetrics,
  ],
  summary: ["acks_per_s", "ack_p99_ms", "server_cpu_s_per_1k"],
  params: (opts) => ({
    groups: pick(opts.sizes.groups, 10),
    subscribers: pick(opts.sizes.subscribers, 20),
    publishers: pick(opts.sizes.publishers, 1),
    rate: pick(opts.sizes.rate, 0),
    inflight: pick(opts.sizes.inflight, 4),
    ...runShape(opts, 20),
  }),
  nodes: () => 1,
  redis: () => false,
  async measure(target, p, runTag) {
    const groups = Array.from({ length: p.groups }, (_, g) => groupName(runTag, "create", g));
    const m = await runTraffic(
      target,
      {
        ...p,
        publishers: [{ op: "create", perGroup: p.publishers, rate: p.rate, inflight: p.inflight }],
        subscriberNodes: [0],
        publisherNodes: [0],
      },
      groups,
    );
    headlineLatency(m, "create ack", "ack_");
    headlineLatency(m, "create delivery");
    return m;
  },
};
