// Where typing fan-out stops keeping up: the rate is raised step by step until delivery p99
// passes 50 ms (or anything is lost), first on one node, then on three nodes through Redis with
// publishers and subscribers on different nodes, with the same groups, sockets and publishers.
// The highest passing step of each gives the two targets of issue 6: the service's one-node
// figure against the baseline's, and three nodes against one.
import { loadConfig } from "../../src/config/env.ts";
import type { Measurement } from "../lib/results.ts";
import { round } from "../lib/results.ts";
import { pick, type MeasureContext, type Scenario } from "../lib/scenario.ts";
import type { Target } from "../lib/targets.ts";
import { groupName, runTraffic, type TrafficParams } from "../lib/traffic.ts";
import { runShape } from "./common.ts";

/** A step passes while delivery p99 stays at or under this. */
export const P99_LIMIT_MS = 50;
/** Each step raises the rate by this factor until one fails; two halvings then narrow it down. */
const GROWTH = 1.5;
const MAX_GROWTH_STEPS = 12;
const REFINE_STEPS = 2;
/**
 * Frames per second one publisher may send: half the service's default per-socket limit, so the
 * search finds where delivery saturates, not the rate limiter. Higher rates add publishers.
 */
const PUBLISHER_RATE = loadConfig({}).MAX_FRAMES_PER_SECOND / 2;

type Params = ReturnType<typeof runShape> & {
  nodes: number;
  groups: number;
  subscribers: number;
  publishers: number;
  rate: number;
};

/** One rate tried: what it delivered and whether it passed. */
export interface Step {
  /** Typing frames per second over all publishers, as scheduled. */
  rate: number;
  publishersPerGroup: number;
  deliveredPerS: number;
  p50: number;
  p99: number;
  lossPct: number;
  serverCpuPct: number;
  serverCpuSPer1k: number;
  serverRssMb?: number;
  generatorCpuMaxPct: number;
  sendLagP99: number;
  pass: boolean;
  /** Why the step failed. */
  why?: string;
}

export interface Search {
  topology: string;
  steps: Step[];
  best?: Step;
  /** Why the search stopped where it did. */
  limit: string;
}

export const saturation: Scenario<Params> = {
  name: "saturation",
  description: `typing fan-out raised until delivery p99 > ${P99_LIMIT_MS} ms: one node, then N nodes through Redis with the same load`,
  metrics: [
    { key: "one_node_max_per_s", label: `one node: delivered at p99 ≤ ${P99_LIMIT_MS} ms`, unit: "events/s", better: "higher" },
    { key: "one_node_p99_ms", label: "one node: p99 at that rate", unit: "ms", better: "lower" },
    { key: "one_node_cpu_s_per_1k", label: "one node: server CPU per 1k delivered at that rate", unit: "s", better: "lower" },
    { key: "one_node_rss_mb", label: "one node: server RSS at that rate", unit: "MB", better: "lower" },
    { key: "cross_node_max_per_s", label: `N nodes via Redis: delivered at p99 ≤ ${P99_LIMIT_MS} ms`, unit: "events/s", better: "higher" },
    { key: "cross_node_p99_ms", label: "N nodes: p99 at that rate", unit: "ms", better: "lower" },
    { key: "cross_over_one", label: "N nodes ÷ one node", unit: "×", better: "higher" },
    { key: "generator_cpu_max_pct", label: "busiest client worker CPU at the best one-node step", unit: "%", better: "lower" },
  ],
  summary: ["one_node_max_per_s", "cross_node_max_per_s", "cross_over_one"],
  params: (opts) => ({
    nodes: Math.max(2, pick(opts.sizes.nodes, 3)),
    groups: pick(opts.sizes.groups, 20),
    subscribers: pick(opts.sizes.subscribers, 50),
    publishers: pick(opts.sizes.publishers, 1),
    rate: pick(opts.sizes.rate, 400),
    ...runShape(opts, 4),
    warmup: pick(opts.sizes.warmup, 1),
  }),
  nodes: (p) => p.nodes,
  redis: () => true,
  async measure(target, p, runTag, ctx) {
    const one = await ctx.startTarget({ nodes: 1, redis: false, tag: "1" });
    let oneNode: Search;
    try {
      oneNode = await search("one node", p, ctx, (rate) => step(one, p, groups(runTag, "one", p.groups), rate, [0], [0]));
    } finally {
      await one.stop();
    }
    const others = Array.from({ length: p.nodes - 1 }, (_, i) => i + 1);
    const crossNode = await search(`${p.nodes} nodes via Redis`, p, ctx, (rate) =>
      step(target, p, groups(runTag, "xn", p.groups), rate, others, [0]),
    );

    const headline: Record<string, number> = {};
    if (oneNode.best) {
      headline.one_node_max_per_s = oneNode.best.deliveredPerS;
      headline.one_node_p99_ms = oneNode.best.p99;
      headline.one_node_cpu_s_per_1k = oneNode.best.serverCpuSPer1k;
      if (oneNode.best.serverRssMb !== undefined) headline.one_node_rss_mb = oneNode.best.serverRssMb;
      headline.generator_cpu_max_pct = oneNode.best.generatorCpuMaxPct;
    }
    if (crossNode.best) {
      headline.cross_node_max_per_s = crossNode.best.deliveredPerS;
      headline.cross_node_p99_ms = crossNode.best.p99;
    }
    if (oneNode.best && crossNode.best) headline.cross_over_one = round(crossNode.best.deliveredPerS / oneNode.best.deliveredPerS, 3);
    const notes = [oneNode, crossNode].map((s) => `${s.topology}: stopped at ${s.limit}`);
    return { headline, latency: {}, details: { searches: [oneNode, crossNode] }, notes };
  },
};

const groups = (runTag: string, kind: string, n: number) => Array.from({ length: n }, (_, g) => groupName(runTag, `sat${kind}`, g));

async function step(target: Target, p: Params, names: string[], rate: number, subscriberNodes: number[], publisherNodes: number[]): Promise<Step> {
  const perGroup = Math.max(p.publishers, Math.ceil(rate / p.groups / PUBLISHER_RATE));
  const traffic: TrafficParams = {
    ...p,
    publishers: [{ op: "typing", perGroup, rate, inflight: 0 }],
    subscriberNodes,
    publisherNodes,
  };
  const m: Measurement = await runTraffic(target, traffic, names);
  const l = m.latency["typing delivery"];
  const d = m.details as { sendLagMs: { p99: number }; duplicates: number; errors: number };
  const s: Step = {
    rate,
    publishersPerGroup: perGroup,
    deliveredPerS: m.headline.delivered_per_s ?? 0,
    p50: l?.p50 ?? 0,
    p99: l?.p99 ?? 0,
    lossPct: m.headline.loss_pct ?? 0,
    serverCpuPct: m.headline.server_cpu_pct ?? 0,
    serverCpuSPer1k: m.headline.server_cpu_s_per_1k ?? 0,
    serverRssMb: m.headline.server_rss_mb ?? 0,
    generatorCpuMaxPct: m.headline.generator_cpu_max_pct ?? 0,
    sendLagP99: d.sendLagMs.p99,
    pass: false,
  };
  if (!l) s.why = "nothing delivered";
  else if (s.lossPct > 0) s.why = `${s.lossPct} % lost`;
  else if (d.duplicates > 0 || d.errors > 0) s.why = `${d.duplicates} duplicates, ${d.errors} errors`;
  else if (s.p99 > P99_LIMIT_MS) s.why = `p99 ${s.p99} ms > ${P99_LIMIT_MS} ms`;
  // A generator that cannot keep its schedule measures itself, not the server.
  else if (s.sendLagP99 > P99_LIMIT_MS) s.why = `the client workers fell behind (send lag p99 ${s.sendLagP99} ms, busiest worker ${s.generatorCpuMaxPct} % CPU)`;
  s.pass = s.why === undefined;
  return s;
}

/** Grows the rate until a step fails, then narrows the gap between the last pass and that failure. */
export async function search(
  topology: string,
  p: Pick<Params, "rate">,
  ctx: Pick<MeasureContext, "log">,
  run: (rate: number) => Promise<Step>,
): Promise<Search> {
  const steps: Step[] = [];
  const tryRate = async (rate: number) => {
    const s = await run(Math.round(rate));
    steps.push(s);
    ctx.log(`${topology}: ${s.rate} frames/s (${s.publishersPerGroup} publishers per group) -> ${s.deliveredPerS} delivered/s, p99 ${s.p99} ms, server ${s.serverCpuPct} % CPU: ${s.pass ? "pass" : `FAIL (${s.why})`}`);
    return s;
  };
  let pass: Step | undefined;
  let fail: Step | undefined;
  let rate = p.rate;
  for (let i = 0; i < MAX_GROWTH_STEPS; i++) {
    const s = await tryRate(rate);
    if (s.pass) {
      pass = s;
      if (fail) break; // came down from a failing start
      rate *= GROWTH;
    } else {
      fail = s;
      if (pass || i >= 2) break;
      rate /= 2; // the starting rate was already too much: step down
    }
  }
  for (let i = 0; i < REFINE_STEPS && pass && fail && fail.rate > pass.rate * 1.05; i++) {
    const s = await tryRate((pass.rate + fail.rate) / 2);
    if (s.pass) pass = s;
    else fail = s;
  }
  const best = steps.filter((s) => s.pass).sort((a, b) => b.deliveredPerS - a.deliveredPerS)[0];
  const limit = fail
    ? `${fail.rate} frames/s (${fail.why})`
    : `the last step tried, ${steps.at(-1)?.rate} frames/s, still passed (raise --rate to search higher)`;
  return { topology, steps, best, limit };
}
