// A scenario measures one situation on each target in turn (the baseline, then the service) and
// compares the two; this file holds what they share.
import type { Options } from "./args.ts";
import type { LatencySummary } from "./histogram.ts";
import { medianOfPairs, ratios, type Measurement, type Metric, type ScenarioResult, type TargetResult } from "./results.ts";
import { startTarget, type Target, type TargetKind } from "./targets.ts";

/**
 * Servers a scenario starts for itself before each target (private Redis processes, say), so
 * their CPU can be read and nothing is shared with other runs; stopped after the target.
 */
export interface ScenarioServices {
  /** Set = the target's nodes relay through this Redis instead of --redis-url (when `redis` is true). */
  redisUrl?: string;
  /** Named values the scenario's measure reads back (a cluster's seed list, say). */
  values: Record<string, string>;
  /** Named groups of process ids, e.g. the Redis servers, whose CPU the scenario reports. */
  pids: Record<string, number[]>;
  stop(): Promise<void>;
}

export interface Scenario<P extends Record<string, unknown>> {
  name: string;
  description: string;
  metrics: Metric[];
  /** Keys of the few metrics the report's overview table shows. */
  summary: string[];
  params(opts: Options): P;
  nodes(params: P): number;
  /** True = nodes relay through Redis. */
  redis(params: P): boolean;
  /** Extra environment for the nodes (default: none; the service runs in open dev mode). */
  env?(params: P): Record<string, string>;
  /** Started before each target and stopped after it (default: none). */
  services?(params: P): Promise<ScenarioServices>;
  /** The targets this scenario means something for (default: both); others are skipped. */
  targets?: readonly TargetKind[];
  measure(target: Target, params: P, runTag: string, ctx: MeasureContext): Promise<Measurement>;
}

/** What a scenario may need beyond its own target: a second topology to compare with, progress lines. */
export interface MeasureContext {
  /** Starts another target of the same kind; the scenario stops it (its `stop`) when done with it. */
  startTarget(opts: { nodes: number; redis: boolean; tag: string; embedded?: boolean; env?: Record<string, string> }): Promise<Target>;
  log(line: string): void;
  /** What the scenario's `services` started for this target. */
  services?: ScenarioServices;
  /** The bench's command-line options (PostgreSQL and Redis URLs, client workers, sizes). */
  opts: Options;
}

/** Scenarios differ in their parameters; the registry only needs the common surface. */
export type AnyScenario = Scenario<any>;

export const latencyMetrics = (prefix: string, what: string): Metric[] => [
  { key: `${prefix}p50_ms`, label: `${what} p50`, unit: "ms", better: "lower" },
  { key: `${prefix}p90_ms`, label: `${what} p90`, unit: "ms", better: "lower" },
  { key: `${prefix}p99_ms`, label: `${what} p99`, unit: "ms", better: "lower" },
  { key: `${prefix}p999_ms`, label: `${what} p99.9`, unit: "ms", better: "lower" },
  { key: `${prefix}max_ms`, label: `${what} max`, unit: "ms", better: "lower" },
];

/** Copies a latency summary into the headline under `prefix` (see latencyMetrics). */
export function headlineLatency(m: Measurement, label: string, prefix = ""): void {
  const l: LatencySummary | undefined = m.latency[label];
  if (!l) return;
  Object.assign(m.headline, {
    [`${prefix}p50_ms`]: l.p50,
    [`${prefix}p90_ms`]: l.p90,
    [`${prefix}p99_ms`]: l.p99,
    [`${prefix}p999_ms`]: l.p999,
    [`${prefix}max_ms`]: l.max,
  });
}

export const pick = (value: number | undefined, fallback: number) => value ?? fallback;

export async function runScenario(
  s: AnyScenario,
  opts: Options,
  runTag: string,
  log: (line: string) => void,
): Promise<ScenarioResult> {
  const params = s.params(opts);
  const result: ScenarioResult = {
    scenario: s.name,
    description: s.description,
    params: { ...params, workers: opts.workers },
    metrics: s.metrics,
    summary: s.summary,
    startedAt: new Date().toISOString(),
    finishedAt: "",
    targets: {},
    ratio: {},
  };
  const measureTarget = async (kind: TargetKind, pair: number): Promise<TargetResult | undefined> => {
    if (s.targets && !s.targets.includes(kind)) {
      log(`${s.name}: ${kind}: skipped (the scenario measures ${s.targets.join(" and ")} only)`);
      return undefined;
    }
    // Per target and scenario: database names, Redis keys and group names never collide,
    // neither with each other nor with anyone else's run on the same servers.
    const tag = `${runTag}${kind[0]}${s.name.replace(/[^a-z]/g, "").slice(0, 4)}${pair > 0 ? pair : ""}`;
    log(`${s.name}: ${kind} …`);
    let target: Target | undefined;
    let services: ScenarioServices | undefined;
    let res: TargetResult;
    try {
      services = await s.services?.(params);
      const redisUrl = services?.redisUrl ?? opts.redisUrl;
      target = await startTarget(kind, {
        nodes: s.nodes(params),
        redisUrl: s.redis(params) ? redisUrl : undefined,
        pgAdminUrl: opts.pgAdminUrl,
        runTag: tag,
        env: s.env?.(params),
      });
      const ctx: MeasureContext = {
        startTarget: (o) =>
          startTarget(kind, { nodes: o.nodes, redisUrl: o.redis ? redisUrl : undefined, pgAdminUrl: opts.pgAdminUrl, runTag: `${tag}${o.tag}`, embedded: o.embedded, env: o.env }),
        log: (line) => log(`${s.name}: ${kind}: ${line}`),
        services,
        opts,
      };
      res = { ok: true, ...(await s.measure(target, params, tag, ctx)), nodes: [] };
    } catch (err) {
      res = { ok: false, error: err instanceof Error ? err.message : String(err), nodes: [] };
    }
    if (target) {
      // The service's write batches over the whole run: how many creates each database call carried.
      for (const n of target.nodes) {
        const text = await fetch(`http://127.0.0.1:${n.port}/metrics`).then((r) => r.text(), () => "");
        const count = Number(/^chat_store_write_batch_items_count (\S+)/m.exec(text)?.[1] ?? 0);
        const sum = Number(/^chat_store_write_batch_items_sum (\S+)/m.exec(text)?.[1] ?? 0);
        if (count > 0) (res.notes ??= []).push(`node :${n.port} wrote ${count} batches, ${(sum / count).toFixed(1)} creates each on average`);
      }
      const endings = await target.stop();
      res.nodes = target.nodes.map((n, i) => ({ ending: endings[i] ?? "", logLines: n.logLines, log: n.log.slice(-10) }));
      const logged = target.nodes.reduce((a, n) => a + n.logLines - n.startupLogLines, 0);
      if (logged > 0) (res.notes ??= []).push(`nodes printed ${logged} log lines at LOG_LEVEL=warn after start-up (see nodes[].log)`);
      for (const e of endings) if (!/exited 0 /.test(e)) (res.notes ??= []).push(`node ${e}`);
    }
    await services?.stop().catch((err: Error) => (res.notes ??= []).push(`stopping the scenario's servers failed: ${err.message}`));
    log(res.ok ? `${s.name}: ${kind}: ${summaryLine(s, res)}` : `${s.name}: ${kind}: FAILED: ${res.error}`);
    for (const note of res.notes ?? []) log(`  note: ${note}`);
    return res;
  };
  // --pairs N: N measurements of each target, alternating which goes first (a machine getting
  // busier or quieter favours neither); each ratio is the median of the pairs' ratios.
  const pairs = Math.max(1, Math.round(opts.sizes.pairs ?? 1));
  const measured: ScenarioResult["targets"][] = [];
  for (let pair = 0; pair < pairs; pair++) {
    const order = pair % 2 === 0 ? opts.targets : [...opts.targets].reverse();
    const targets: ScenarioResult["targets"] = {};
    if (pairs > 1) log(`${s.name}: pair ${pair + 1} of ${pairs}`);
    for (const kind of order) {
      const res = await measureTarget(kind, pair);
      if (res) targets[kind] = res;
    }
    measured.push(targets);
  }
  if (pairs === 1) {
    result.targets = measured[0]!;
    result.ratio = ratios(s.metrics, result.targets);
  } else {
    Object.assign(result, medianOfPairs(s.metrics, measured));
    log(`${s.name}: median of ${pairs} pairs: ${s.summary.map((k) => `${k} ×${result.ratio[k] ?? "–"}`).join(", ")}`);
  }
  result.finishedAt = new Date().toISOString();
  return result;
}

function summaryLine(s: AnyScenario, r: TargetResult): string {
  return s.metrics
    .filter((m) => r.headline?.[m.key] !== undefined)
    .map((m) => `${m.label} ${r.headline![m.key]}${m.unit === "%" ? "%" : m.unit ? ` ${m.unit}` : ""}`)
    .join(", ");
}

