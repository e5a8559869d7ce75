// The publish/subscribe run behind the typing, create, cross-node and soak scenarios: G groups
// of S listening sockets plus publishers, spread over the client workers and the target's nodes;
// warm up, measure for a while, let in-flight events land, then account for every one of them.
import { nowUs, sleep } from "./clock.ts";
import type { Op } from "./frames.ts";
import { mergeHistograms, summarize, type LatencySummary } from "./histogram.ts";
import type { Counts, IntervalReport, Plan, PublisherSpec, SocketSpec, Window, WorkerReport } from "./ipc.ts";
import { busyShare, cpuSeconds, machineCpu, totalCpuSeconds, totalRssKb, type MachineCpu } from "./proc.ts";
import { round, type IntervalPoint, type Measurement } from "./results.ts";
import type { Target } from "./targets.ts";
import { WorkerPool } from "./workers.ts";

export interface PublisherGroup {
  op: Op;
  /** Publishers of this kind in each group. */
  perGroup: number;
  /** Frames per second over all of them; 0 = closed loop (create only). */
  rate: number;
  /** Closed loop: creates awaiting their ack per publisher. */
  inflight: number;
}

export interface TrafficParams {
  groups: number;
  subscribers: number;
  publishers: PublisherGroup[];
  warmup: number;
  duration: number;
  workers: number;
  connectConcurrency: number;
  /** Node indexes subscribers and publishers connect to (round robin). */
  subscriberNodes: number[];
  publisherNodes: number[];
  /** Seconds between soak samples; unset = no sampling. */
  sampleEvery?: number;
  /** Other server processes whose CPU counts per delivery too (the Redis servers): `redis_cpu_*`. */
  redisPids?: number[];
}

const DRAIN_MAX_MS = 15_000;
/** A worker's share of a core above which its figures say more about it than the server. */
const SATURATED = 0.85;

const LATENCY_LABELS: Record<keyof Counts, string> = {
  typing: "typing delivery",
  create: "create delivery",
  acks: "create ack",
};

export function groupName(runTag: string, scenario: string, g: number): string {
  return `${runTag}-${scenario}-g${g}`;
}

function buildPlans(target: Target, p: TrafficParams, groups: string[], intervals: boolean): Plan[] {
  const plans: Plan[] = Array.from({ length: p.workers }, () => ({
    subscribers: [],
    publishers: [],
    idle: false,
    intervals,
    connectConcurrency: p.connectConcurrency,
  }));
  const nodeUrl = (nodes: number[], i: number) => target.nodes[nodes[i % nodes.length]!]!.wsBase;
  let n = 0;
  for (let g = 0; g < p.groups; g++) {
    for (let s = 0; s < p.subscribers; s++, n++) {
      const spec: SocketSpec = { url: `${nodeUrl(p.subscriberNodes, n)}/ws/chat/${groups[g]}/?user=s${g}_${s}`, group: g };
      plans[n % p.workers]!.subscribers.push(spec);
    }
  }
  let id = 0;
  for (const pg of p.publishers) {
    // Closed loop waits for acks, and typing has none.
    if (pg.op === "typing" && pg.rate <= 0) throw new Error("typing needs a --rate above 0");
    const count = pg.perGroup * p.groups;
    for (let i = 0; i < count; i++, id++) {
      const g = i % p.groups;
      // Typing marks its send time in `user`, so that publisher cannot pin ?user=.
      const query = pg.op === "create" ? `?user=w${id}` : "";
      const spec: PublisherSpec = {
        url: `${nodeUrl(p.publisherNodes, id)}/ws/chat/${groups[g]}/${query}`,
        group: g,
        id,
        op: pg.op,
        rate: pg.rate / count,
        phase: i / count,
        inflight: pg.inflight,
      };
      plans[id % p.workers]!.publishers.push(spec);
    }
  }
  return plans;
}

interface Snapshot {
  atUs: number;
  cpuS: number;
  rssKb: number;
  machine: MachineCpu;
  /** CPU seconds of TrafficParams.redisPids together. */
  redisCpuS: number;
  /** CPU seconds per PostgreSQL backend of the target's database; unset without one. */
  db?: Map<number, number>;
}

async function snapshot(target: Target, redisPids: number[] = []): Promise<Snapshot> {
  const atUs = nowUs();
  const pids = target.nodes.map((n) => n.pid);
  const snap: Snapshot = { atUs, cpuS: totalCpuSeconds(pids), rssKb: totalRssKb(pids), machine: machineCpu(), redisCpuS: totalCpuSeconds(redisPids) };
  if (target.database) {
    snap.db = new Map();
    for (const pid of await target.database.backendPids()) {
      try {
        snap.db.set(pid, cpuSeconds(pid));
      } catch {
        // the backend ended between the query and the read
      }
    }
  }
  return snap;
}

/** Database CPU between two snapshots; a backend that appeared in between counts in full. */
function dbCpuSeconds(before: Snapshot, after: Snapshot): number {
  let total = 0;
  for (const [pid, cpu] of after.db ?? []) total += cpu - (before.db?.get(pid) ?? 0);
  return total;
}

const sleepUntil = (us: number) => sleep(Math.max(0, (us - nowUs()) / 1000));

export async function runTraffic(target: Target, p: TrafficParams, groups: string[]): Promise<Measurement> {
  const pool = new WorkerPool(p.workers);
  try {
    const plans = buildPlans(target, p, groups, p.sampleEvery !== undefined);
    const connected = (await pool.askEach(plans.map((plan) => ({ type: "connect", plan })), "connected", 300_000)).map(
      (r) => r.report,
    );
    const subscribersPerGroup = new Map<number, number>();
    for (const c of connected) {
      for (const [g, n] of Object.entries(c.subscribersPerGroup)) {
        subscribersPerGroup.set(Number(g), (subscribersPerGroup.get(Number(g)) ?? 0) + n);
      }
    }

    const startUs = nowUs() + 500_000;
    const window: Window = { startUs, measureFromUs: startUs + p.warmup * 1e6, stopUs: startUs + (p.warmup + p.duration) * 1e6 };
    pool.post({ type: "start", window });
    await sleepUntil(window.measureFromUs);
    const before = await snapshot(target, p.redisPids);
    const intervals = p.sampleEvery ? await sampleIntervals(pool, target, window, p.sampleEvery, before) : undefined;
    await sleepUntil(window.stopUs);
    const after = await snapshot(target, p.redisPids);
    const drainMs = await drain(pool);
    const reports = (await pool.askAll({ type: "collect" }, "report")).map((r) => r.report);

    const m = account(reports, subscribersPerGroup, before, after, (window.stopUs - window.measureFromUs) / 1e6);
    if (p.redisPids?.length) {
      const redisS = after.redisCpuS - before.redisCpuS;
      const seconds = (after.atUs - before.atUs) / 1e6;
      m.headline.redis_cpu_pct = round((redisS / seconds) * 100, 1);
      m.headline.redis_cpu_s_per_1k = m.details.delivered ? round(redisS / ((m.details.delivered as number) / 1000), 5) : 0;
    }
    const failed = connected.reduce((a, c) => a + c.failed, 0);
    if (failed > 0) {
      m.notes.push(`${failed} sockets failed to connect, e.g. ${connected.flatMap((c) => c.errorSamples)[0]}`);
    }
    m.details.connectFailures = failed;
    // The connect phase's rate, first attempt to last open over every worker (each socket's join,
    // membership and handshake; bench/presence.ts compares it with presence on and off).
    const connectS = (Math.max(...connected.map((c) => c.lastOpenUs)) - Math.min(...connected.map((c) => c.firstAttemptUs))) / 1e6;
    m.details.connectsPerS = Math.round(connected.reduce((a, c) => a + c.connected, 0) / connectS);
    m.details.drainMs = drainMs;
    if (intervals) m.intervals = intervals;
    return m;
  } finally {
    await pool.close();
  }
}

/** Waits until deliveries stop arriving (or a limit), so late events count as late, not lost. */
async function drain(pool: WorkerPool): Promise<number> {
  const began = Date.now();
  let last = -1;
  let steady = 0;
  while (Date.now() - began < DRAIN_MAX_MS && steady < 4) {
    await sleep(250);
    const total = (await pool.askAll({ type: "progress" }, "progress")).reduce((a, r) => a + r.delivered, 0);
    steady = total === last ? steady + 1 : 0;
    last = total;
  }
  return Date.now() - began;
}

async function sampleIntervals(
  pool: WorkerPool,
  target: Target,
  window: Window,
  everyS: number,
  first: Snapshot,
): Promise<IntervalPoint[]> {
  const points: IntervalPoint[] = [];
  let prev = first;
  for (let t = window.measureFromUs + everyS * 1e6; t <= window.stopUs + 1000; t += everyS * 1e6) {
    await sleepUntil(t);
    const reports = (await pool.askAll({ type: "sample" }, "sample")).map((r) => r.report);
    const now = await snapshot(target);
    const seconds = (now.atUs - prev.atUs) / 1e6;
    const latency = summarize(mergeHistograms(reports.flatMap((r) => deliveryHistograms(r))));
    const delivered = reports.reduce((a, r) => a + r.delivered.typing + r.delivered.create, 0);
    points.push({
      t: round((now.atUs - window.measureFromUs) / 1e6, 1),
      p50: latency.p50,
      p99: latency.p99,
      max: latency.max,
      deliveredPerSec: round(delivered / seconds, 1),
      rssMb: round(now.rssKb / 1024, 1),
      cpuPct: round(((now.cpuS - prev.cpuS) / seconds) * 100, 1),
    });
    prev = now;
  }
  return points;
}

const deliveryHistograms = (r: IntervalReport | WorkerReport) => [r.latency.typing, r.latency.create];

function account(
  reports: WorkerReport[],
  subscribersPerGroup: Map<number, number>,
  before: Snapshot,
  after: Snapshot,
  seconds: number,
): Measurement {
  const sum = (f: (r: WorkerReport) => number) => reports.reduce((a, r) => a + f(r), 0);
  const published = { typing: 0, create: 0 };
  let expected = 0;
  for (const r of reports) {
    for (const pub of r.published) {
      published[pub.op] += pub.count;
      expected += pub.count * (subscribersPerGroup.get(pub.group) ?? 0);
    }
  }
  const delivered = sum((r) => r.delivered.typing + r.delivered.create);
  const acks = sum((r) => r.delivered.acks);
  const duplicates = sum((r) => r.duplicates);
  const reordered = sum((r) => r.reordered);
  const seqViolations = sum((r) => r.seqViolations);
  const errors = sum((r) => r.errors);
  const unknown = sum((r) => r.unknown);
  const closedEarly = sum((r) => r.closedEarly);
  const lost = expected - delivered;
  const acksLost = published.create - acks;

  const latency: Record<string, LatencySummary> = {};
  for (const kind of ["typing", "create", "acks"] as const) {
    const h = summarize(mergeHistograms(reports.map((r) => r.latency[kind])));
    if (h.count > 0) latency[LATENCY_LABELS[kind]] = h;
  }
  const sendLag = summarize(mergeHistograms(reports.map((r) => r.sendLag)));
  const workerCpu = reports.map((r) => (r.wallUs > 0 ? r.cpuUs / r.wallUs : 0));
  const serverCpuS = after.cpuS - before.cpuS;
  const machineBusy = busyShare(before.machine, after.machine);

  const notes: string[] = [];
  if (lost > 0) notes.push(`${lost} of ${expected} expected deliveries never arrived (${round((lost / Math.max(1, expected)) * 100, 3)} %)`);
  if (lost < 0) notes.push(`${-lost} more deliveries than expected: events reached sockets outside their group?`);
  if (acksLost > 0) notes.push(`${acksLost} of ${published.create} creates got no ack`);
  if (duplicates > 0) notes.push(`${duplicates} deliveries were duplicates or out of order`);
  if (reordered > 0) notes.push(`${reordered} deliveries arrived after a later frame of the same publisher`);
  if (seqViolations > 0) notes.push(`${seqViolations} create events broke their group's seq order (gap, repeat or step back)`);
  const samples = (list: string[]) => list.slice(0, 3).map((s) => `\`${s}\``).join(", ");
  if (errors > 0) notes.push(`${errors} error frames, e.g. ${samples(reports.flatMap((r) => r.errorSamples))}`);
  if (unknown > 0) notes.push(`${unknown} unexpected frames, e.g. ${samples(reports.flatMap((r) => r.unknownSamples))}`);
  if (closedEarly > 0) notes.push(`${closedEarly} sockets were closed during the run`);
  const hottest = Math.max(...workerCpu);
  if (hottest > SATURATED) {
    notes.push(`a client worker used ${Math.round(hottest * 100)} % of a core: the generator may have limited the run (add --workers)`);
  }
  if (sendLag.p99 > 50) notes.push(`publishers fell behind schedule (send lag p99 ${sendLag.p99} ms)`);
  if (machineBusy > 0.9) notes.push(`the machine's CPUs were ${Math.round(machineBusy * 100)} % busy: the run competed for CPU`);

  return {
    headline: {
      delivered_per_s: round(delivered / seconds, 1),
      published_per_s: round((published.typing + published.create) / seconds, 1),
      acks_per_s: round(acks / seconds, 1),
      loss_pct: round((Math.max(0, lost) / Math.max(1, expected)) * 100, 4),
      duplicates,
      errors,
      server_cpu_s_per_1k: delivered > 0 ? round(serverCpuS / (delivered / 1000), 5) : 0,
      server_cpu_pct: round((serverCpuS / seconds) * 100, 1),
      server_rss_mb: round(after.rssKb / 1024, 1),
      generator_cpu_max_pct: round(hottest * 100, 1),
      machine_busy_pct: round(machineBusy * 100, 1),
      ...(after.db ? { db_cpu_pct: round((dbCpuSeconds(before, after) / seconds) * 100, 1) } : {}),
    },
    latency,
    details: {
      seconds: round(seconds, 3),
      published,
      expected,
      delivered,
      lost,
      acks,
      acksLost,
      duplicates,
      reordered,
      seqViolations,
      errors,
      unknown,
      closedEarly,
      serverCpuSeconds: round(serverCpuS, 3),
      generatorCpuPct: workerCpu.map((c) => round(c * 100, 1)),
      sendLagMs: sendLag,
    },
    notes,
  };
}
