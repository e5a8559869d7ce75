// Several nodes on one Redis with senders and receivers on different nodes, so every measured
// event crosses Redis: the cost and latency of the scale-out path. The baseline relays through
// Redis the same way (bench/baseline/server.ts), so the ratio is about the service, not Redis.
import { headlineLatency, latencyMetrics, pick, type Scenario } from "../lib/scenario.ts";
import { groupName, runTraffic } from "../lib/traffic.ts";
import { runShape, trafficMetrics } from "./common.ts";

type Params = ReturnType<typeof runShape> & {
  nodes: number;
  op: "typing" | "create";
  groups: number;
  subscribers: number;
  publishers: number;
  rate: number;
  inflight: number;
};

export const crossNode: Scenario<Params> = {
  name: "cross-node",
  description: "N nodes on one Redis, publishers on node 1, subscribers on the others (--op typing|create)",
  metrics: [...latencyMetrics("", "delivery"), ...latencyMetrics("ack_", "ack").filter((m) => /p50|p99_/.test(m.key)), ...trafficMetrics],
  summary: ["p99_ms", "delivered_per_s", "server_cpu_s_per_1k"],
  params: (opts) => ({
    nodes: Math.max(2, pick(opts.sizes.nodes, 3)),
    op: opts.op ?? "typing",
    groups: pick(opts.sizes.groups, 10),
    subscribers: pick(opts.sizes.subscribers, 40),
    publishers: pick(opts.sizes.publishers, 1),
    rate: pick(opts.sizes.rate, opts.op === "create" ? 200 : 400),
    inflight: pick(opts.sizes.inflight, 4),
    ...runShape(opts, 20),
  }),
  nodes: (p) => p.nodes,
  redis: () => true,
  async measure(target, p, runTag) {
    const groups = Array.from({ length: p.groups }, (_, g) => groupName(runTag, "xnode", g));
    const others = Array.from({ length: p.nodes - 1 }, (_, i) => i + 1);
    const m = await runTraffic(
      target,
      {
        ...p,
        publishers: [{ op: p.op, perGroup: p.publishers, rate: p.rate, inflight: p.inflight }],
        subscriberNodes: others,
        publisherNodes: [0],
      },
      groups,
    );
    headlineLatency(m, p.op === "typing" ? "typing delivery" : "create delivery");
    headlineLatency(m, "create ack", "ack_");
    return m;
  },
};
