// The figures the rebalance and cross-node benchmarks compute from what their clients and nodes
// report (bench/rebalance/measure.ts, bench/scenarios/cross-node.ts), on inputs whose answer is
// known, and the scenario runner skipping a target a scenario does not measure.
import t from "tap";
import { encodeHistogram, newHistogram } from "../../bench/lib/histogram.ts";
import { parseOptions } from "../../bench/lib/args.ts";
import type { Measurement } from "../../bench/lib/results.ts";
import { runScenario, type Scenario } from "../../bench/lib/scenario.ts";
import { completeness, isBalanced, latencyBetween, latencyPerSecond, peakRate, promHistogram, promQuantiles, spreadPct } from "../../bench/rebalance/measure.ts";
import { clusterHeadline, median } from "../../bench/scenarios/cross-node.ts";
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
  t.ok(isBalanced([1150, 1000, 925, 925], 4, 4000), "exactly 15 % is balanced");
  t.notOk(isBalanced([1160, 1000, 920, 920], 4, 4000), "16 % is not");
  t.notOk(isBalanced([1000, 1000, 1000], 4, 3000), "a node not counted yet is not balanced");
  t.ok(isBalanced([950, 950, 950, 950], 4, 4000), "95 % of the sockets connected is enough");
  t.notOk(isBalanced([771, 771, 732, 732], 4, 4050), "even counts with a quarter of the clients still reconnecting are not balanced");
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

t.test("latency per second: one row per second of the window, counted from its start", async (t) => {
  const h = (values: number[]) => {
    const x = newHistogram();
    for (const v of values) x.recordValue(v);
    return encodeHistogram(x);
  };
  const rows = latencyPerSecond([{ "100": h([1_000]), "102": h([30_000_000]) }, { "102": h([2_000]) }], 100e6, 103e6);
  t.same(rows.map((r) => [r.s, r.count]), [[0, 1], [1, 0], [2, 2]], "seconds 0..2 of the window, an empty one included");
  t.ok(Math.abs(rows[2]!.p99 - 30_000) < 30, `the 30 s delivery is that second's p99 (ms), got ${rows[2]!.p99}`);
});

t.test("Prometheus histograms: buckets summed over nodes, quantiles as bucket bounds", async (t) => {
  const node = (a: number, b: number, inf: number, sum: number) => [
    "# HELP chat_resume_seconds x",
    `chat_resume_seconds_bucket{le="0.1",source="database"} ${a}`,
    `chat_resume_seconds_bucket{source="database",le="1"} ${b}`,
    `chat_resume_seconds_bucket{source="database",le="+Inf"} ${inf}`,
    `chat_resume_seconds_sum{source="database"} ${sum}`,
    `chat_resume_seconds_count{source="database"} ${inf}`,
    `chat_resume_seconds_bucket{source="memory",le="1"} 99`,
  ].join("\n");
  const h = promHistogram([node(50, 90, 100, 40), node(40, 98, 100, 60)], "chat_resume_seconds", 'source="database"');
  t.equal(h.count, 200);
  t.equal(h.sum, 100);
  t.equal(h.buckets.get(1), 188, "the le=1 buckets of both nodes, whatever the label order");
  t.same(promQuantiles(h), { count: 200, mean: 0.5, p50: 1, p90: 1, p99: Infinity }, "p99 is past the last finite bound");
  t.same(promQuantiles(promHistogram([], "x")), { count: 0, mean: 0, p50: 0, p90: 0, p99: 0 });
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
  t.equal(median([1.2, 0.8, 1.0]), 1.0, "the rounds' ratios are summarised by their median");
  t.equal(median([0.9, 2.0]), 1.45);
  t.equal(median([0.7]), 0.7);
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
