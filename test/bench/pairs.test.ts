// `npm run bench -- --pairs N`: several alternating baseline/service measurements become one result
// whose ratios are the medians of the pairs' ratios, so one noisy pair does not decide a target.
import t from "tap";
import { medianOfPairs, type Metric, type ScenarioResult, type TargetResult } from "../../bench/lib/results.ts";

const metrics: Metric[] = [
  { key: "cpu", label: "cpu", unit: "s", better: "lower" },
  { key: "rate", label: "rate", unit: "/s", better: "higher" },
];
const target = (cpu: number, rate: number, note = ""): TargetResult => ({
  ok: true,
  headline: { cpu, rate },
  latency: {},
  details: {},
  notes: note ? [note] : [],
  nodes: [],
});
const pair = (b: [number, number], s: [number, number]): ScenarioResult["targets"] => ({
  baseline: target(...b),
  service: target(...s),
});

t.test("ratios are the medians of the pairs' ratios, not the ratio of the medians", async (t) => {
  // pair ratios for cpu: 1.2, 1.0, 1.5 -> 1.2; the ratio of median headlines would be 12/10 = 1.2 too
  // here, so a fourth set makes them differ: cpu ratios 2/1, 10/10, 30/20, 24/20 -> 2, 1, 1.5, 1.2
  const measured = [pair([1, 100], [2, 90]), pair([10, 100], [10, 100]), pair([20, 100], [30, 80]), pair([20, 100], [24, 95])];
  const r = medianOfPairs(metrics, measured);
  t.equal(r.ratio.cpu, 1.35, "median of 2, 1, 1.5, 1.2");
  t.equal(r.ratio.rate, 0.925, "median of 0.9, 1, 0.8, 0.95");
  t.same(r.targets.baseline?.headline, { cpu: 15, rate: 100 }, "each headline figure is its own median");
  t.same(r.targets.service?.headline, { cpu: 17, rate: 92.5 });
  t.equal(r.pairs?.length, 4, "every pair is kept");
  t.same(r.pairs?.[2]?.ratio, { cpu: 1.5, rate: 0.8 });
});

t.test("a failed measurement is left out and said", async (t) => {
  const failed: TargetResult = { ok: false, error: "node exited", nodes: [] };
  const r = medianOfPairs(metrics, [pair([10, 100], [11, 100]), { baseline: target(10, 100), service: failed }, pair([10, 100], [13, 100])]);
  t.equal(r.ratio.cpu, 1.2, "the failed pair has no ratio: median of 1.1 and 1.3");
  t.ok(r.targets.service?.ok);
  t.match(r.targets.service?.notes?.[0], /medians of 2 pairs \(1 failed\)/);
  t.equal(r.targets.baseline?.notes?.[0], "figures are the medians of 3 pairs; latency and details are the last pair's");
});
