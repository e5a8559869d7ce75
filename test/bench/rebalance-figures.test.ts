// The figures the rebalance and cross-node benchmarks compute from what their clients and nodes
// report (bench/rebalance/measure.ts, bench/scenarios/cross-node.ts), on inputs whose answer is
// known, and the scenario runner skipping a target a scenario does not measure.
import t from "tap";
import { encodeHistogram, newHistogram } from "../../bench/lib/histogram.ts";
import { parseOptions } from "../../bench/lib/args.ts";
import type { Measurement } from "../../bench/lib/results.ts";
import { runScenario, type Scenario } from "../../bench/lib/scenario.ts";
import { completeness, isBalanced, latencyBetween, peakRate, spreadPct } from "../../bench/rebalance/measure.ts";
import { clusterHeadline } from "../../bench/scenarios/cross-node.ts";
import { scenarios } from "../../bench/scenarios/index.ts";

t.test("peak rate: the most events in any 1 s window, whatever their order", async (t) => {
  const s = 1e6;
  t.equal(peakRate([]), 0);
  t.equal(peakRate([0, 0.1 * s, 0.2 * s, 5 * s]), 3, "three within one second");
  t.equal(peakRate([5 * s, 0, 0.2 * s, 0.1 * s]), 3, "unsorted input");
  t.equal(peakRate([0, 0.5 * s, 1 * s, 1.5 * s]), 2, "a window is [t, t + 1 s): an event exactly 1 s later starts the next");
  t.equal(peakRate([0, 0.5 * s, 1 * s, 1.5 * s], 2 * s), 2, "over 2 s: 4 events per 2 s = 2/s");
});

t.test("spread and balance: the farthest node from the mean, ±15 % and all nodes present", async (t) => {
  t.equal(spreadPct([1000, 1000, 0, 0]), 100);
  t.equal(spreadPct([1000, 1000, 1000, 1000]), 0);
  t.equal(spreadPct([1150, 1000, 925, 925]), 15);
  t.equal(spreadPct([]), 0);
  t.equal(spreadPct([0, 0]), 0);
  t.ok(isBalanced([1150, 1000, 925, 925], 4), "exactly 15 % is balanced");
  t.notOk(isBalanced([1160, 1000, 920, 920], 4), "16 % is not");
  t.notOk(isBalanced([1000, 1000, 1000], 4), "a node not counted yet is not balanced");
});

t.test("latency by window: an event counts in the window of the second it was sent", async (t) => {
  const worker = (entries: [number, number[]][]) =>
    Object.fromEntries(
      entries.map(([second, values]) => {
        const h = newHistogram();
        for (const v of values) h.recordValue(v);
        return [String(second), encodeHistogram(h)];
      }),
    );
  const a = worker([[100, [1_000]], [101, [50_000]], [102, [2_000]]]);
  const b = worker([[101, [70_000, 60_000]]]);
  const move = latencyBetween([a, b], 101e6, 102e6);
  t.equal(move.count, 3, "second 101 from both workers");
  t.ok(Math.abs(move.max - 70) < 0.1, `the slowest is 70 ms (HdrHistogram precision), got ${move.max}`);
  const before = latencyBetween([a, b], 100.4e6, 101e6);
  t.equal(before.count, 1, "a window starting mid-second takes that whole second");
  t.equal(latencyBetween([a, b], 200e6, 300e6).count, 0, "nothing sent then");
});

t.test("completeness: each receiver against its group's last stored seq", async (t) => {
  const last = new Map([["g1", 10], ["g2", 5]]);
  t.same(
    completeness(
      [
        { group: "g1", last: 10, duplicates: 0, gaps: 0 },
        { group: "g1", last: 7, duplicates: 2, gaps: 0 },
        { group: "g2", last: 5, duplicates: 0, gaps: 1 },
      ],
      last,
    ),
    { missing: 3, duplicates: 2, gaps: 1, incomplete: 1 },
  );
  t.same(completeness([{ group: "g3", last: 0, duplicates: 0, gaps: 0 }], last), { missing: 0, duplicates: 0, gaps: 0, incomplete: 0 }, "a group with no events");
});

t.test("Redis Cluster ÷ one Redis: delivered/s, server CPU and server + Redis CPU per delivery", async (t) => {
  const m = (h: Record<string, number>, p99 = 5): Measurement => ({
    headline: h,
    latency: { "typing delivery": { count: 1, mean: 1, p50: 1, p90: 2, p99, p999: 9, max: 10 } },
    details: {},
    notes: [],
  });
  const single = m({ delivered_per_s: 16_000, server_cpu_s_per_1k: 0.01, redis_cpu_s_per_1k: 0.001, loss_pct: 0 });
  const cluster = m({ delivered_per_s: 15_200, server_cpu_s_per_1k: 0.0105, redis_cpu_s_per_1k: 0.0022, loss_pct: 0 }, 7);
  const h = clusterHeadline(single, cluster);
  t.equal(h.cluster_over_single_delivered, 0.95);
  t.equal(h.cluster_over_single_cpu, 1.05);
  t.equal(h.cluster_over_single_total_cpu, 1.155, "(0.0105 + 0.0022) / (0.01 + 0.001)");
  t.equal(h.cluster_p99_ms, 7);
  t.equal(h.cluster_redis_cpu_s_per_1k, 0.0022);
  const none = clusterHeadline(m({ delivered_per_s: 0 }), m({ delivered_per_s: 10 }));
  t.notOk("cluster_over_single_delivered" in none, "no ratio to a zero");
});

t.test("both new scenarios are registered and selectable by name", async (t) => {
  const names = scenarios.map((s) => s.name);
  t.ok(names.includes("rebalance") && names.includes("cross-node"));
  t.same(parseOptions(["--scenario", "rebalance,cross-node"], names).scenarios, ["rebalance", "cross-node"]);
  t.same(scenarios.find((s) => s.name === "rebalance")!.targets, ["service"], "rebalance measures the service only");
});

t.test("a target the scenario does not measure is skipped, nothing is started", async (t) => {
  let measured = 0;
  let started = 0;
  const s: Scenario<Record<string, never>> = {
    name: "only-service",
    description: "",
    metrics: [],
    summary: [],
    targets: ["service"],
    params: () => ({}),
    nodes: () => 1,
    redis: () => false,
    services: async () => {
      started++;
      return { values: {}, pids: {}, stop: async () => {} };
    },
    measure: async () => {
      measured++;
      return { headline: {}, latency: {}, details: {}, notes: [] };
    },
  };
  const opts = parseOptions(["--target", "baseline"], ["only-service"]);
  const lines: string[] = [];
  const r = await runScenario(s, opts, "tag", (l) => lines.push(l));
  t.same(r.targets, {}, "no result for the baseline");
  t.equal(measured + started, 0, "neither its servers nor its measure ran");
  t.match(lines.join("\n"), /baseline: skipped/);
});
