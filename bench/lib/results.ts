// The shape of bench/results/run-*.json: what the report generator reads back, so it is the one
// place to look when changing what a run records.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { LatencySummary } from "./histogram.ts";
import type { GitInfo, MachineInfo } from "./machine.ts";
import { median } from "./stats.ts";
import type { TargetKind } from "./targets.ts";

/** A figure a scenario puts in the summary table and compares between targets. */
export interface Metric {
  key: string;
  label: string;
  unit: string;
  better: "lower" | "higher";
}

/** One sampling interval of a soak run. */
export interface IntervalPoint {
  /** Seconds since measuring began, at the interval's end. */
  t: number;
  p50: number;
  p99: number;
  max: number;
  deliveredPerSec: number;
  rssMb: number;
  cpuPct: number;
}

/** What measuring one target produced. */
export interface Measurement {
  headline: Record<string, number>;
  /** Latency distributions by what was timed, e.g. "typing delivery" or "ack". */
  latency: Record<string, LatencySummary>;
  intervals?: IntervalPoint[];
  details: Record<string, unknown>;
  /** Anything a reader should know before trusting the figures: loss, errors, saturation. */
  notes: string[];
}

export interface TargetResult extends Partial<Measurement> {
  ok: boolean;
  error?: string;
  nodes: { ending: string; logLines: number; log: string[] }[];
}

export interface ScenarioResult {
  scenario: string;
  description: string;
  params: Record<string, unknown>;
  metrics: Metric[];
  /** Keys of the metrics shown in the report's overview. */
  summary: string[];
  startedAt: string;
  finishedAt: string;
  targets: Partial<Record<TargetKind, TargetResult>>;
  /** service ÷ baseline for each metric; null when either side is missing, zero or negative. */
  ratio: Record<string, number | null>;
  /** `--pairs N`: each pair's ratios and headlines; `targets` and `ratio` are then their medians. */
  pairs?: { ratio: Record<string, number | null>; headline: Record<string, Record<string, number>> }[];
}

export interface RunResult {
  schema: 1;
  runId: string;
  command: string;
  startedAt: string;
  finishedAt: string;
  git: GitInfo;
  machine: MachineInfo;
  scenarios: ScenarioResult[];
}

export function ratios(metrics: Metric[], targets: ScenarioResult["targets"]): Record<string, number | null> {
  const base = targets.baseline?.headline;
  const svc = targets.service?.headline;
  return Object.fromEntries(
    metrics.map((m) => {
      const b = base?.[m.key];
      const s = svc?.[m.key];
      // A ratio of signed figures (an RSS slope, say) or to a zero says nothing.
      return [m.key, b !== undefined && s !== undefined && b > 0 && s >= 0 ? round(s / b, 3) : null];
    }),
  );
}

/**
 * Several pairs as one result: each target's headline figures are the medians of its pairs', each
 * ratio the median of the pairs' ratios (not the ratio of the medians), and every pair is kept.
 */
export function medianOfPairs(
  metrics: Metric[],
  measured: ScenarioResult["targets"][],
): Pick<ScenarioResult, "targets" | "ratio" | "pairs"> {
  const pairRatios = measured.map((t) => ratios(metrics, t));
  const ratio = Object.fromEntries(
    metrics.map((m) => {
      const xs = pairRatios.map((r) => r[m.key]).filter((x): x is number => typeof x === "number");
      return [m.key, xs.length ? round(median(xs), 3) : null];
    }),
  );
  const targets: ScenarioResult["targets"] = {};
  for (const kind of new Set(measured.flatMap((t) => Object.keys(t) as TargetKind[]))) {
    const runs = measured.map((t) => t[kind]).filter((r): r is TargetResult => r?.ok === true);
    const last = measured.at(-1)![kind] ?? runs.at(-1)!;
    const headline = Object.fromEntries(
      [...new Set(runs.flatMap((r) => Object.keys(r.headline ?? {})))].map((k) => [k, round(median(runs.map((r) => r.headline?.[k]).filter((x): x is number => x !== undefined)), 5)]),
    );
    const failed = measured.length - runs.length;
    targets[kind] = {
      ...last,
      ok: runs.length > 0,
      headline,
      notes: [`figures are the medians of ${runs.length} pairs${failed ? ` (${failed} failed)` : ""}; latency and details are the last pair's`, ...(last.notes ?? [])],
    };
  }
  return { targets, ratio, pairs: measured.map((t, i) => ({ ratio: pairRatios[i]!, headline: Object.fromEntries(Object.entries(t).map(([k, r]) => [k, r?.headline ?? {}])) })) };
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function writeRun(dir: string, run: RunResult): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `run-${run.startedAt.replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(run, null, 2)}\n`);
  return file;
}

/** Every stored run, oldest first (file names sort by start time). */
export function readRuns(dir: string): RunResult[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /^run-.*\.json$/.test(f)).sort();
  } catch {
    return [];
  }
  return files.map((f) => JSON.parse(readFileSync(path.join(dir, f), "utf8")) as RunResult);
}
