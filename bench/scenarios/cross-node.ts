// Several nodes with senders and receivers on different nodes, so every measured event crosses
// Redis: the cost and latency of the scale-out path. Each target runs the same load twice, first
// through one Redis, then through a 3-primary/3-replica Redis Cluster (sharded pub/sub,
// REDIS_CLUSTER_NODES), both private redis-server processes started for the run, so their CPU
// is read too and no other run shares them. The single-Redis run is the Cluster's baseline
// (issue 14: Cluster deliveries/s ≥ 0.9 ×, CPU per delivery ≤ 1.1 ×); the bare-uWS baseline
// relays through Redis and the Cluster the same way (bench/baseline/server.ts), so the
// service ÷ baseline ratios are about the service, not Redis.
import { startRedisCluster, startStandaloneRedis } from "../../scripts/cluster/redis-processes.ts";
import type { Measurement, Metric } from "../lib/results.ts";
import { round } from "../lib/results.ts";
import { headlineLatency, latencyMetrics, pick, type Scenario, type ScenarioServices } from "../lib/scenario.ts";
import { groupName, runTraffic, type TrafficParams } from "../lib/traffic.ts";
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

const clusterMetrics: Metric[] = [
  { key: "redis_cpu_s_per_1k", label: "one Redis: Redis CPU per 1k delivered", unit: "s", better: "lower" },
  { key: "cluster_delivered_per_s", label: "Redis Cluster: delivered", unit: "events/s", better: "higher" },
  { key: "cluster_p50_ms", label: "Redis Cluster: delivery p50", unit: "ms", better: "lower" },
  { key: "cluster_p99_ms", label: "Redis Cluster: delivery p99", unit: "ms", better: "lower" },
  { key: "cluster_loss_pct", label: "Redis Cluster: loss", unit: "%", better: "lower" },
  { key: "cluster_server_cpu_s_per_1k", label: "Redis Cluster: server CPU per 1k delivered", unit: "s", better: "lower" },
  { key: "cluster_redis_cpu_s_per_1k", label: "Redis Cluster: Redis CPU per 1k delivered (6 processes)", unit: "s", better: "lower" },
  { key: "cluster_over_single_delivered", label: "Cluster ÷ one Redis: delivered/s (target ≥ 0.9)", unit: "×", better: "higher" },
  { key: "cluster_over_single_cpu", label: "Cluster ÷ one Redis: server CPU per delivery (target ≤ 1.1)", unit: "×", better: "lower" },
  { key: "cluster_over_single_total_cpu", label: "Cluster ÷ one Redis: server + Redis CPU per delivery", unit: "×", better: "lower" },
];

/** Figures of the Cluster run, named `cluster_*`, and its ratios to the single-Redis run. */
export function clusterHeadline(single: Measurement, cluster: Measurement): Record<string, number> {
  const s = single.headline;
  const c = cluster.headline;
  const l = cluster.latency["typing delivery"] ?? cluster.latency["create delivery"];
  const out: Record<string, number> = {
    cluster_delivered_per_s: c.delivered_per_s ?? 0,
    cluster_loss_pct: c.loss_pct ?? 0,
    cluster_server_cpu_s_per_1k: c.server_cpu_s_per_1k ?? 0,
  };
  if (l) Object.assign(out, { cluster_p50_ms: l.p50, cluster_p99_ms: l.p99 });
  if (c.redis_cpu_s_per_1k !== undefined) out.cluster_redis_cpu_s_per_1k = c.redis_cpu_s_per_1k;
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? round(a / b, 3) : undefined);
  const put = (key: string, v: number | undefined) => v !== undefined && (out[key] = v);
  put("cluster_over_single_delivered", ratio(c.delivered_per_s, s.delivered_per_s));
  put("cluster_over_single_cpu", ratio(c.server_cpu_s_per_1k, s.server_cpu_s_per_1k));
  const total = (h: Record<string, number>) => (h.server_cpu_s_per_1k ?? 0) + (h.redis_cpu_s_per_1k ?? 0);
  put("cluster_over_single_total_cpu", ratio(total(c), total(s)));
  return out;
}

export const crossNode: Scenario<Params> = {
  name: "cross-node",
  description: "N nodes, publishers on node 1, subscribers on the others, through one Redis and then a 3-primary Redis Cluster at the same load (--op typing|create)",
  metrics: [
    ...latencyMetrics("", "delivery"),
    ...latencyMetrics("ack_", "ack").filter((m) => /p50|p99_/.test(m.key)),
    ...trafficMetrics,
    ...clusterMetrics,
  ],
  summary: ["p99_ms", "delivered_per_s", "server_cpu_s_per_1k", "cluster_over_single_delivered", "cluster_over_single_cpu"],
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
  services: startRedisServers,
  async measure(target, p, runTag, ctx) {
    const services = ctx.services!;
    const traffic = (redisPids: number[]): TrafficParams => ({
      ...p,
      publishers: [{ op: p.op, perGroup: p.publishers, rate: p.rate, inflight: p.inflight }],
      subscriberNodes: Array.from({ length: p.nodes - 1 }, (_, i) => i + 1),
      publisherNodes: [0],
      redisPids,
    });
    const groups = (kind: string) => Array.from({ length: p.groups }, (_, g) => groupName(runTag, kind, g));
    const m = await runTraffic(target, traffic(services.pids.redis!), groups("xnode"));
    headlineLatency(m, p.op === "typing" ? "typing delivery" : "create delivery");
    headlineLatency(m, "create ack", "ack_");
    ctx.log(`one Redis: ${m.headline.delivered_per_s} delivered/s, server ${m.headline.server_cpu_s_per_1k} s + Redis ${m.headline.redis_cpu_s_per_1k} s CPU per 1k`);

    const clusterTarget = await ctx.startTarget({ nodes: p.nodes, redis: false, tag: "c", env: { REDIS_CLUSTER_NODES: services.values.clusterNodes! } });
    let c: Measurement;
    try {
      c = await runTraffic(clusterTarget, traffic(services.pids.cluster!), groups("xclu"));
    } finally {
      const endings = await clusterTarget.stop();
      for (const e of endings) if (!/exited 0 /.test(e)) m.notes.push(`Redis Cluster run: node ${e}`);
    }
    Object.assign(m.headline, clusterHeadline(m, c));
    for (const n of c.notes) m.notes.push(`Redis Cluster run: ${n}`);
    m.details.cluster = { headline: c.headline, latency: c.latency, details: c.details };
    ctx.log(`Redis Cluster: ${c.headline.delivered_per_s} delivered/s, server ${c.headline.server_cpu_s_per_1k} s + Redis ${c.headline.redis_cpu_s_per_1k} s CPU per 1k: ×${m.headline.cluster_over_single_delivered} delivered, ×${m.headline.cluster_over_single_cpu} server CPU per delivery`);
    return m;
  },
};

/** One private redis-server and one private 3-primary/3-replica Redis Cluster. */
async function startRedisServers(): Promise<ScenarioServices> {
  const single = await startStandaloneRedis();
  let cluster;
  try {
    cluster = await startRedisCluster();
  } catch (err) {
    await single.stop();
    throw err;
  }
  return {
    redisUrl: single.url,
    values: { clusterNodes: cluster.nodesEnv },
    pids: { redis: [single.process.pid], cluster: cluster.nodes.map((n) => n.pid) },
    stop: async () => void (await Promise.all([single.stop(), cluster.stop()])),
  };
}
