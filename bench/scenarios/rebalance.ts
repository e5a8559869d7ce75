// Scale-up under traffic on the local cluster (scripts/cluster: HAProxy with leastconn in front of
// real nodes): 2 nodes hold `connections` sockets in `groups` groups while one sender per group
// creates messages, then 2 more nodes join. Run twice in the same run: first with rebalancing on
// (the default REBALANCE_RATE), then, as the baseline, with REBALANCE_RATE=0 and the same
// windows. Reports the time until every node holds within ±15 % of the mean, the peak reconnect
// rate (clients, any 1 s) and sheds (nodes, any 1 s), delivery latency before, during and after
// the move (by the second an event was sent; an event a moved client gets by its resume counts
// from its send), and whether every client ended with every event of its group exactly once.
// The service only: the bare baseline has no fleet to rebalance.
import { Cluster } from "../../scripts/cluster/cluster.ts";
import { startStandaloneRedis } from "../../scripts/cluster/redis-processes.ts";
import { httpGet, metric } from "../../test/helpers/probe.ts";
import pg from "pg";
import { nowUs, sleep } from "../lib/clock.ts";
import { mergeHistograms, summarize } from "../lib/histogram.ts";
import { round, type Measurement, type Metric } from "../lib/results.ts";
import { pick, type MeasureContext, type Scenario } from "../lib/scenario.ts";
import type { ReceiverSpec, RebalanceWorkerReport, SenderSpec } from "../rebalance/ipc.ts";
import { completeness, isBalanced, latencyBetween, latencyPerSecond, peakRate, promHistogram, promQuantiles, spreadPct } from "../rebalance/measure.ts";
import { RebalancePool } from "../rebalance/pool.ts";

type Params = {
  connections: number;
  groups: number;
  /** Creates per second over all senders. */
  rate: number;
  warmup: number;
  /** Seconds measured before the scale-up. */
  before: number;
  /** Seconds measured once balanced. */
  after: number;
  /** Longest wait for balance after the scale-up. */
  balanceTimeout: number;
  workers: number;
  concurrency: number;
};

const FROM_NODES = 2;
const TO_NODES = 4;
const TOLERANCE = 0.15;

const m = (key: string, label: string, unit: string, better: "lower" | "higher"): Metric => ({ key, label, unit, better });
export const rebalanceMetrics: Metric[] = [
  m("balance_s", `rebalancing on: scale-up (2 → 4 nodes started) until every node is within ±${TOLERANCE * 100} % of the mean, 95 % of sockets connected`, "s", "lower"),
  m("spread_end_pct", "rebalancing on: farthest node from the mean at the end of the move", "%", "lower"),
  m("off_spread_end_pct", "rebalancing off (same window): farthest node from the mean", "%", "lower"),
  m("moved", "sockets moved (closed with 4012)", "", "lower"),
  m("reconnect_peak_per_s", "peak client reconnects, any 1 s", "/s", "lower"),
  m("shed_peak_per_s", "peak 4012 closes by the nodes, any 1 s", "/s", "lower"),
  m("shed_bound_per_s", "bound: REBALANCE_RATE (5 %) × sockets per second", "/s", "lower"),
  m("before_p99_ms", "delivery p99 before the scale-up", "ms", "lower"),
  m("move_p50_ms", "delivery p50 during the move", "ms", "lower"),
  m("move_p99_ms", "delivery p99 during the move", "ms", "lower"),
  m("move_max_ms", "delivery max during the move", "ms", "lower"),
  m("after_p99_ms", "delivery p99 once balanced", "ms", "lower"),
  m("off_move_p99_ms", "rebalancing off: delivery p99 in the same window", "ms", "lower"),
  m("move_p99_over_off", "delivery p99 during the move ÷ rebalancing off", "×", "lower"),
  m("delivered_per_s", "delivered during the move (rebalancing on)", "events/s", "higher"),
  m("missing", "events a client never got (both runs)", "", "lower"),
  m("duplicates", "events a client got twice (both runs)", "", "lower"),
  m("unacked", "creates never acknowledged (both runs)", "", "lower"),
];

export const rebalance: Scenario<Params> = {
  name: "rebalance",
  description: `scale-up under traffic behind HAProxy (leastconn): ${FROM_NODES} → ${TO_NODES} nodes, with rebalancing (4012 + resume with since) and, as the baseline, without`,
  metrics: rebalanceMetrics,
  summary: ["balance_s", "reconnect_peak_per_s", "move_p99_ms", "move_p99_over_off"],
  targets: ["service"],
  params: (opts) => ({
    connections: pick(opts.sizes.connections, 4_000),
    groups: pick(opts.sizes.groups, 50),
    rate: pick(opts.sizes.rate, 100),
    warmup: pick(opts.sizes.warmup, 3),
    before: pick(opts.sizes.duration, 10),
    after: 10,
    balanceTimeout: 60,
    workers: opts.workers,
    concurrency: pick(opts.sizes.concurrency, 50),
  }),
  // The scenario starts its own cluster (and HAProxy); the target only provides a database.
  nodes: () => 0,
  redis: () => false,
  async services() {
    // Fleet heartbeats and the bus on a private Redis: nobody else's keys, nobody else's load.
    const redis = await startStandaloneRedis();
    return { redisUrl: redis.url, values: {}, pids: { redis: [redis.process.pid] }, stop: () => redis.stop() };
  },
  async measure(target, p, runTag, ctx) {
    if (!target.database) throw new Error("rebalance needs the service target (a database)");
    const on = await runPhase("on", target.database.url, p, runTag, ctx);
    const offDb = await ctx.startTarget({ nodes: 0, redis: false, tag: "off" });
    let off: Phase;
    try {
      off = await runPhase("off", offDb.database!.url, p, `${runTag}o`, ctx, on.moveUs);
    } finally {
      await offDb.stop();
    }
    return combine(on, off, p);
  },
};

interface Phase {
  kind: "on" | "off";
  /** µs from the scale-up to balance (on) or the window used (off). */
  moveUs: number;
  balancedUs: number | null;
  spreadEnd: number[];
  shedPeak: number;
  reports: RebalanceWorkerReport[];
  windows: { before: [number, number]; move: [number, number]; after: [number, number] };
  lastSeq: Map<string, number>;
  notes: string[];
  /** Each node's /metrics at the end of the phase (replay slot waits, reads, resumes). */
  metricsTexts: string[];
  /** Replay reads waiting for a slot, summed over the nodes, every ~0.5 s of the move: [s since scale-up, waiting, running]. */
  replayQueue: [number, number, number][];
}

async function runPhase(kind: "on" | "off", databaseUrl: string, p: Params, runTag: string, ctx: MeasureContext, moveUs?: number): Promise<Phase> {
  const log = (line: string) => ctx.log(`rebalancing ${kind}: ${line}`);
  const nodeLogs: string[] = [];
  const cluster = await Cluster.start({
    nodes: FROM_NODES,
    databaseUrl,
    redisUrl: ctx.services!.redisUrl!,
    drainDelayMs: 0,
    env: kind === "off" ? { REBALANCE_RATE: "0" } : {},
    onLog: (source, line) => {
      // Warnings and worse, but not the open-dev-mode notice every node prints at start.
      if (source !== "cluster" && /"level":(40|50|60)/.test(line) && !/OPEN DEV MODE/.test(line)) nodeLogs.push(`${source}: ${line.slice(0, 300)}`);
    },
  });
  const pool = new RebalancePool(p.workers);
  const notes: string[] = [];
  try {
    const groups = Array.from({ length: p.groups }, (_, g) => `${runTag}-rb${kind}-g${g}`);
    const receivers: ReceiverSpec[][] = Array.from({ length: pool.size }, () => []);
    const senders: SenderSpec[][] = Array.from({ length: pool.size }, () => []);
    for (let i = 0; i < p.connections; i++) receivers[i % pool.size]!.push({ group: groups[i % p.groups]!, user: `r${i}` });
    groups.forEach((group, g) => senders[g % pool.size]!.push({ group, id: g, rate: p.rate / p.groups, phase: g / p.groups }));
    const wsBase = `ws://${cluster.host}:${cluster.port}`;
    const opened = await pool.askEach(
      receivers.map((r, i) => ({ type: "open" as const, wsBase, receivers: r, senders: senders[i]!, concurrency: p.concurrency })),
      "opened",
      300_000,
    );
    const failed = opened.reduce((a, o) => a + o.failed, 0);
    if (failed > 0) notes.push(`${failed} sockets never connected, e.g. ${opened.flatMap((o) => o.errorSamples)[0]}`);
    const counts = async () => Promise.all(cluster.live.map(async (n) => (await metric(n.port, "chat_connections")) ?? -1));
    log(`${p.connections} receivers and ${p.groups} senders open: ${JSON.stringify(await counts())}`);

    const startUs = nowUs() + 500_000;
    pool.post({ type: "start", atUs: startUs });
    const beforeFrom = startUs + p.warmup * 1e6;
    await sleep((beforeFrom + p.before * 1e6 - nowUs()) / 1000);

    const scaleUs = nowUs();
    await Promise.all(Array.from({ length: TO_NODES - FROM_NODES }, () => cluster.addNode()));
    const servingUs = nowUs();
    log(`${TO_NODES} nodes serving after ${round((servingUs - scaleUs) / 1e6, 1)} s`);
    const shed: { at: number; n: number }[] = [];
    const replayQueue: [number, number, number][] = [];
    const sample = (text: string, line: string) => {
      const l = text.split("\n").find((x) => x.startsWith(line));
      return l === undefined ? 0 : Number(l.slice(l.lastIndexOf(" ") + 1));
    };
    let spread: number[] = [];
    let balancedUs: number | null = null;
    const limitUs = scaleUs + (moveUs ?? p.balanceTimeout * 1e6);
    for (;;) {
      spread = await counts();
      const texts = await Promise.all(cluster.live.map(async (n) => { const r = await httpGet(n.port, "/metrics"); return "body" in r ? r.body : ""; }));
      shed.push({ at: nowUs(), n: texts.reduce((a, t) => a + sample(t, "chat_rebalance_closed_total "), 0) });
      replayQueue.push([round((nowUs() - scaleUs) / 1e6, 1), texts.reduce((a, t) => a + sample(t, 'chat_replays{state="waiting"} '), 0), texts.reduce((a, t) => a + sample(t, 'chat_replays{state="running"} '), 0)]);
      if (moveUs === undefined && isBalanced(spread, TO_NODES, p.connections + p.groups, TOLERANCE)) {
        balancedUs = nowUs();
        break;
      }
      if (nowUs() >= limitUs) break;
      await sleep(500);
    }
    const moveEndUs = balancedUs ?? nowUs();
    log(balancedUs ? `balanced after ${round((balancedUs - scaleUs) / 1e6, 1)} s: ${JSON.stringify(spread)}` : `after ${round((moveEndUs - scaleUs) / 1e6, 1)} s: ${JSON.stringify(spread)} (spread ${spreadPct(spread)} %)`);
    await sleep(p.after * 1000);
    const stopUs = nowUs();
    pool.post({ type: "stop-sending" });

    // Every create acknowledged and every receiver caught up (delivered stops moving), or 30 s.
    const drainUntil = Date.now() + 30_000;
    let last = -1;
    let steady = 0;
    while (Date.now() < drainUntil && steady < 4) {
      await sleep(250);
      const prog = await pool.askAll({ type: "progress" }, "progress");
      const delivered = prog.reduce((a, x) => a + x.delivered, 0);
      const unacked = prog.reduce((a, x) => a + x.unacked, 0);
      steady = delivered === last && unacked === 0 ? steady + 1 : 0;
      last = delivered;
    }
    const reports = (await pool.askAll({ type: "collect" }, "report")).map((r) => r.report);
    const metricsTexts = await Promise.all(cluster.live.map(async (n) => { const r = await httpGet(n.port, "/metrics"); return "body" in r ? r.body : ""; }));
    const lastSeq = await lastSeqs(databaseUrl);
    let shedPeak = 0;
    for (let i = 0, j = 0; i < shed.length; i++) {
      while (j < shed.length && shed[j]!.at - shed[i]!.at < 1e6) j++;
      if (j < shed.length) shedPeak = Math.max(shedPeak, ((shed[j]!.n - shed[i]!.n) * 1e6) / (shed[j]!.at - shed[i]!.at));
    }
    return {
      kind,
      moveUs: moveEndUs - scaleUs,
      balancedUs: balancedUs === null ? null : balancedUs - scaleUs,
      spreadEnd: spread,
      shedPeak: Math.round(shedPeak),
      reports,
      windows: { before: [beforeFrom, scaleUs], move: [scaleUs, moveEndUs], after: [moveEndUs, stopUs] },
      lastSeq,
      metricsTexts,
      replayQueue,
      notes: [...notes, ...nodeLogs.slice(0, 5).map((l) => `node logged: ${l}`)],
    };
  } finally {
    await pool.close();
    await cluster.stop({ timeoutMs: 10_000 });
  }
}

async function lastSeqs(databaseUrl: string): Promise<Map<string, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const rows = (await client.query("SELECT group_name, max(seq)::int AS n FROM group_events GROUP BY group_name")).rows as { group_name: string; n: number }[];
    return new Map(rows.map((r) => [r.group_name, r.n]));
  } finally {
    await client.end();
  }
}

function combine(on: Phase, off: Phase, p: Params): Measurement {
  const lat = (ph: Phase, w: [number, number]) => latencyBetween(ph.reports.map((r) => r.latencyBySecond), w[0], w[1]);
  const before = lat(on, on.windows.before);
  const move = lat(on, on.windows.move);
  const after = lat(on, on.windows.after);
  const offMove = lat(off, off.windows.move);
  const reconnects = (ph: Phase) => ph.reports.flatMap((r) => r.reconnectsUs);
  const closes = (ph: Phase, code: string) => ph.reports.reduce((a, r) => a + (r.closeCodes[code] ?? 0), 0);
  const check = (ph: Phase) => completeness(ph.reports.flatMap((r) => r.receivers), ph.lastSeq);
  const [cOn, cOff] = [check(on), check(off)];
  const unacked = (ph: Phase) => ph.reports.reduce((a, r) => a + r.unacked, 0);
  const notes: string[] = [];
  for (const ph of [on, off]) {
    const c = check(ph);
    const label = `rebalancing ${ph.kind}`;
    if (c.incomplete > 0) notes.push(`${label}: ${c.incomplete} clients missed ${c.missing} events in all`);
    if (c.duplicates > 0 || c.gaps > 0) notes.push(`${label}: ${c.duplicates} duplicate and ${c.gaps} out-of-order events`);
    if (unacked(ph) > 0) notes.push(`${label}: ${unacked(ph)} creates never acknowledged`);
    const acked = new Map<string, number>();
    for (const r of ph.reports) for (const [g, n] of Object.entries(r.ackedPerGroup)) acked.set(g, (acked.get(g) ?? 0) + n);
    const mismatched = [...acked].filter(([g, n]) => (ph.lastSeq.get(g) ?? 0) !== n).length;
    if (mismatched > 0) notes.push(`${label}: ${mismatched} groups hold a different number of events than their acknowledged creates`);
    const errors = ph.reports.reduce((a, r) => a + r.errors, 0);
    if (errors > 0) notes.push(`${label}: ${errors} error frames, e.g. ${ph.reports.flatMap((r) => r.errorSamples)[0]}`);
    const other = Object.entries(sumCodes(ph)).filter(([code]) => code !== "4012");
    if (other.length > 0) notes.push(`${label}: sockets closed with ${other.map(([c, n]) => `${c} ×${n}`).join(", ")}`);
    notes.push(...ph.notes.map((n) => `${label}: ${n}`));
  }
  if (on.balancedUs === null) notes.push(`rebalancing on: not balanced within ${p.balanceTimeout} s (${JSON.stringify(on.spreadEnd)})`);
  const moveS = (on.windows.move[1] - on.windows.move[0]) / 1e6;
  const headline: Record<string, number> = {
    ...(on.balancedUs !== null ? { balance_s: round(on.balancedUs / 1e6, 1) } : {}),
    spread_end_pct: spreadPct(on.spreadEnd),
    off_spread_end_pct: spreadPct(off.spreadEnd),
    moved: closes(on, "4012"),
    reconnect_peak_per_s: peakRate(reconnects(on)),
    shed_peak_per_s: on.shedPeak,
    shed_bound_per_s: Math.round(0.05 * p.connections),
    before_p99_ms: before.p99,
    move_p50_ms: move.p50,
    move_p99_ms: move.p99,
    move_max_ms: move.max,
    after_p99_ms: after.p99,
    off_move_p99_ms: offMove.p99,
    ...(offMove.p99 > 0 ? { move_p99_over_off: round(move.p99 / offMove.p99, 3) } : {}),
    delivered_per_s: moveS > 0 ? round(move.count / moveS, 1) : 0,
    missing: cOn.missing + cOff.missing,
    duplicates: cOn.duplicates + cOff.duplicates,
    unacked: unacked(on) + unacked(off),
  };
  const ack = summarize(mergeHistograms(on.reports.map((r) => r.ackLatency)));
  return {
    headline,
    latency: { "delivery before": before, "delivery during the move": move, "delivery once balanced": after, "rebalancing off: delivery in the same window": offMove, "create ack (rebalancing on)": ack },
    details: {
      on: { balancedMs: on.balancedUs === null ? null : Math.round(on.balancedUs / 1000), moveMs: Math.round(on.moveUs / 1000), spreadEnd: on.spreadEnd, closeCodes: sumCodes(on), failedReconnects: on.reports.reduce((a, r) => a + r.failedReconnects, 0), reconnects: reconnects(on).length, reconnectPeak2s: peakRate(reconnects(on), 2e6), completeness: cOn },
      onResumes: resumeFigures(on),
      onReplayQueue: on.replayQueue,
      onLatencyPerSecond: latencyPerSecond(on.reports.map((r) => r.latencyBySecond), on.windows.before[0], on.windows.after[1]),
      onReplayedPerSecond: latencyPerSecond(on.reports.map((r) => r.replayedBySecond), on.windows.before[0], on.windows.after[1]),
      offLatencyPerSecond: latencyPerSecond(off.reports.map((r) => r.latencyBySecond), off.windows.before[0], off.windows.after[1]),
      offResumes: resumeFigures(off),
      off: { moveMs: Math.round(off.moveUs / 1000), spreadEnd: off.spreadEnd, closeCodes: sumCodes(off), reconnects: reconnects(off).length, completeness: cOff },
    },
    notes,
  };
}

/** Where a moved client's time went: closed → reopened, reopened → `resumed`, and the nodes' own view (slot waits, reads, resumes by source). */
function resumeFigures(ph: Phase) {
  const all = ph.reports.flatMap((r) => r.resumes);
  const [from, to] = ph.windows.move;
  const inMove = all.filter(([closed]) => closed >= from && closed < to);
  const q = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const at = (p: number) => (s.length ? round(s[Math.min(s.length - 1, Math.floor(p * s.length))]! / 1000, 1) : 0);
    return { n: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
  };
  const hist = (name: string, labels = "") => promQuantiles(promHistogram(ph.metricsTexts, name, labels));
  return {
    clientDownMs: q(inMove.map(([c, o]) => o - c)),
    clientOpenToResumedMs: q(inMove.map(([, o, r]) => r - o)),
    replayedPerResume: q(inMove.map(([, , , n]) => n * 1000)),
    replayedLatency: latencyBetween(ph.reports.map((r) => r.replayedBySecond), from, to),
    nodeSlotWaitS: hist("chat_replay_slot_wait_seconds"),
    nodeReadS: hist("chat_replay_read_seconds"),
    nodeResumeS: Object.fromEntries(["none", "memory", "database"].map((s) => [s, hist("chat_resume_seconds", `source="${s}"`)])),
  };
}

function sumCodes(ph: Phase): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of ph.reports) for (const [c, n] of Object.entries(r.closeCodes)) out[c] = (out[c] ?? 0) + n;
  return out;
}
