// Many idle sockets on one node or several: how fast they connect and what each one costs in
// memory, the figure that decides how many users a node can hold.
import { nowUs, sleep } from "../lib/clock.ts";
import { mergeHistograms, summarize } from "../lib/histogram.ts";
import type { ConnectReport, Plan } from "../lib/ipc.ts";
import { totalCpuSeconds, totalRssKb } from "../lib/proc.ts";
import { round, type Measurement } from "../lib/results.ts";
import { latencyMetrics, pick, type Scenario } from "../lib/scenario.ts";
import { median } from "../lib/stats.ts";
import { groupName } from "../lib/traffic.ts";
import { WorkerPool } from "../lib/workers.ts";

type Params = {
  connections: number;
  nodes: number;
  groups: number;
  concurrency: number;
  sourceAddresses: number;
  duration: number;
  workers: number;
};

/** Lets the server's allocator and GC settle before RSS is read. */
const SETTLE_MS = 2000;
const STAGES = 5;
/**
 * Sockets one process may hold here: the hard limit is 20,000 open files, and a server or client
 * worker needs some for itself. More sockets take more nodes and more client workers.
 */
export const SOCKETS_PER_PROCESS = 19_500;

export const connections: Scenario<Params> = {
  name: "connections",
  description: "N idle sockets over one or more nodes (--nodes, through Redis when > 1): connect rate, handshake latency, server RSS per connection",
  metrics: [
    { key: "connected", label: "connected", unit: "", better: "higher" },
    { key: "connects_per_s", label: "connect rate", unit: "/s", better: "higher" },
    ...latencyMetrics("", "handshake").filter((m) => m.key !== "p999_ms"),
    { key: "rss_per_conn_kb", label: "RSS per connection", unit: "kB", better: "lower" },
    { key: "server_rss_mb", label: "server RSS", unit: "MB", better: "lower" },
    { key: "server_cpu_ms_per_1k", label: "server CPU per 1k connects", unit: "ms", better: "lower" },
    { key: "server_cpu_ms_per_1k_all", label: "server CPU per 1k connects, settle pauses included", unit: "ms", better: "lower" },
    { key: "alive_pct", label: "still open after hold", unit: "%", better: "higher" },
    { key: "generator_cpu_max_pct", label: "busiest client worker CPU while connecting", unit: "%", better: "lower" },
  ],
  summary: ["connects_per_s", "p99_ms", "rss_per_conn_kb"],
  params: (opts) => {
    const connections = pick(opts.sizes.connections, 10_000);
    return {
      connections,
      nodes: Math.max(1, pick(opts.sizes.nodes, 1)),
      groups: pick(opts.sizes.groups, 100),
      concurrency: pick(opts.sizes.concurrency, 100),
      // Each source address has its own ~28k ephemeral ports towards one server port.
      sourceAddresses: Math.min(254, pick(opts.sizes["source-addresses"], 8)),
      duration: pick(opts.sizes.duration, 10),
      // Enough client workers that none runs out of file descriptors.
      workers: Math.max(opts.workers, Math.ceil(connections / SOCKETS_PER_PROCESS)),
    };
  },
  nodes: (p) => p.nodes,
  redis: (p) => p.nodes > 1,
  async measure(target, p, runTag): Promise<Measurement> {
    // Over the limit, connects fail one handshake timeout at a time: refuse up front instead.
    if (p.connections / p.nodes > SOCKETS_PER_PROCESS) {
      throw new Error(`${p.connections} sockets over ${p.nodes} node(s) is more than ${SOCKETS_PER_PROCESS} per process (open-file limit 20,000): add --nodes`);
    }
    const nodes = target.nodes;
    const pids = nodes.map((n) => n.pid);
    const rssOf = () => totalRssKb(pids);
    const cpuOf = () => totalCpuSeconds(pids);
    const plans: Plan[] = Array.from({ length: p.workers }, () => ({
      subscribers: [],
      publishers: [],
      idle: true,
      intervals: false,
      connectConcurrency: p.concurrency,
    }));
    for (let i = 0; i < p.connections; i++) {
      const g = i % p.groups;
      plans[i % p.workers]!.subscribers.push({
        url: `${nodes[i % nodes.length]!.wsBase}/ws/chat/${groupName(runTag, "conn", g)}/?user=i${i}`,
        group: g,
        localAddress: p.sourceAddresses > 0 ? `127.0.0.${1 + (i % p.sourceAddresses)}` : undefined,
      });
    }

    const pool = new WorkerPool(p.workers);
    try {
      await sleep(SETTLE_MS);
      // RSS is read after each of several connect stages and the cost per socket taken as the
      // median stage's growth: a single before/after pair is at the mercy of when V8 last
      // collected garbage (a collection can free more than a stage's sockets take).
      const rssPoints: [number, number][] = [[0, rssOf()]];
      const reports: ConnectReport[] = [];
      let connectSeconds = 0;
      let serverCpuS = 0;
      const stages: { seconds: number; serverCpuS: number; p99Ms: number; failed: number }[] = [];
      // Also the CPU of the whole connect phase, the pause after each stage included: work a
      // node defers past the handshakes (a presence frame flushed on its next tick) counts too.
      const cpuAll0 = cpuOf();
      for (let stage = 0; stage < STAGES; stage++) {
        const staged = plans.map((plan) => ({ ...plan, subscribers: plan.subscribers.filter((_, i) => i % STAGES === stage) }));
        const cpu0 = cpuOf();
        const stageReports = (await pool.askEach(staged.map((plan) => ({ type: "connect", plan })), "connected", 600_000)).map(
          (r) => r.report,
        );
        const cpu = cpuOf() - cpu0;
        const seconds = (Math.max(...stageReports.map((r) => r.lastOpenUs)) - Math.min(...stageReports.map((r) => r.firstAttemptUs))) / 1e6;
        serverCpuS += cpu;
        connectSeconds += seconds;
        stages.push({
          seconds: round(seconds, 3),
          serverCpuS: round(cpu, 3),
          p99Ms: summarize(mergeHistograms(stageReports.map((r) => r.handshake))).p99,
          failed: stageReports.reduce((a, r) => a + r.failed, 0),
        });
        reports.push(...stageReports);
        await sleep(SETTLE_MS / 2);
        rssPoints.push([reports.reduce((a, r) => a + r.connected, 0), rssOf()]);
      }
      const serverCpuAllS = cpuOf() - cpuAll0;
      const connected = rssPoints.at(-1)![0];
      const failed = reports.reduce((a, r) => a + r.failed, 0);
      const handshake = summarize(mergeHistograms(reports.map((r) => r.handshake)));
      // Reports come stage by stage, worker by worker: sum each worker's CPU over the stages.
      const workerCpuS = plans.map((_, w) => reports.filter((_, i) => i % p.workers === w).reduce((a, r) => a + r.cpuUs / 1e6, 0));
      const generatorCpu = connectSeconds > 0 ? Math.max(...workerCpuS) / connectSeconds : 0;

      const holdFrom = nowUs();
      await sleep(p.duration * 1000);
      const open = (await pool.askAll({ type: "progress" }, "progress")).reduce((a, r) => a + r.open, 0);
      const rssAfterHold = rssOf();

      const notes: string[] = [];
      if (failed > 0) notes.push(`${failed} of ${p.connections} connects failed, e.g. ${reports.flatMap((r) => r.errorSamples)[0]}`);
      if (generatorCpu > 0.85) {
        notes.push(`a client worker used ${Math.round(generatorCpu * 100)} % of a core while connecting: the connect rate is the generator's (add --workers)`);
      }
      if (open < connected) notes.push(`${connected - open} sockets closed during the ${p.duration} s hold`);
      const per1k = (x: number) => (connected > 0 ? x / (connected / 1000) : 0);
      return {
        headline: {
          connected,
          connects_per_s: connectSeconds > 0 ? round(connected / connectSeconds, 1) : 0,
          p50_ms: handshake.p50,
          p90_ms: handshake.p90,
          p99_ms: handshake.p99,
          p999_ms: handshake.p999,
          max_ms: handshake.max,
          rss_per_conn_kb: round(medianGrowth(rssPoints), 2),
          server_rss_mb: round(rssPoints.at(-1)![1] / 1024, 1),
          server_cpu_ms_per_1k: round(per1k(serverCpuS * 1000), 2),
          server_cpu_ms_per_1k_all: round(per1k(serverCpuAllS * 1000), 2),
          alive_pct: connected > 0 ? round((open / connected) * 100, 2) : 0,
          generator_cpu_max_pct: round(generatorCpu * 100, 1),
        },
        latency: { handshake },
        details: {
          failed,
          connectSeconds: round(connectSeconds, 3),
          rssKbBySockets: rssPoints,
          stages,
          rssAfterHoldKb: rssAfterHold,
          holdSeconds: round((nowUs() - holdFrom) / 1e6, 1),
          open,
        },
        notes,
      };
    } finally {
      await pool.close();
    }
  },
};

/** kB per socket of the median connect stage. */
function medianGrowth(points: [number, number][]): number {
  const perSocket = points.slice(1).flatMap(([n, kb], i) => {
    const [n0, kb0] = points[i]!;
    return n > n0 ? [(kb - kb0) / (n - n0)] : [];
  });
  return median(perSocket);
}
