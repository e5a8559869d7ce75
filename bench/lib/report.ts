// Turns stored runs into docs/benchmarks.md and SVG charts under bench/results/. Each scenario
// shows its most recent result, whichever run produced it, so single-scenario runs update the
// report without re-running the whole suite.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { LatencySummary } from "./histogram.ts";
import { docsFile, performanceLog, resultsDir } from "./paths.ts";
import { ratios, readRuns, type Metric, type RunResult, type ScenarioResult, type TargetResult } from "./results.ts";
import { barChart, formatNumber, lineChart, type Series } from "./svg.ts";
import { TARGET_KINDS } from "./targets.ts";
import { scenarios } from "../scenarios/index.ts";
import type { Search } from "../scenarios/saturation.ts";

interface Latest {
  run: RunResult;
  result: ScenarioResult;
}

/** One hue per target, shades for the distributions within it. */
const SHADES: Record<string, string[]> = {
  baseline: ["#9aa0a6", "#5f6368", "#c4c7c5"],
  service: ["#1a73e8", "#0b3d91", "#8ab4f8"],
};

const PERCENTILES: [keyof LatencySummary, string][] = [
  ["p50", "p50"],
  ["p90", "p90"],
  ["p99", "p99"],
  ["p999", "p99.9"],
  ["max", "max"],
];

/** Writes the report from every run in bench/results; returns the files written. */
export function writeReport(dir = resultsDir, docs = docsFile): string[] {
  // A scenario's latest run that measured both targets wins over a later single-target run,
  // which only shows up while there is nothing complete to show.
  const latest = new Map<string, Latest>();
  for (const run of readRuns(dir)) {
    for (const result of run.scenarios) {
      const complete = TARGET_KINDS.every((k) => result.targets[k] !== undefined);
      const held = latest.get(result.scenario);
      const heldComplete = held && TARGET_KINDS.every((k) => held.result.targets[k] !== undefined);
      if (complete || !heldComplete) latest.set(result.scenario, { run, result });
    }
  }
  const order = scenarios.map((s) => s.name);
  const shown = [...latest.values()].sort((a, b) => order.indexOf(a.result.scenario) - order.indexOf(b.result.scenario));
  const written: string[] = [];
  const sections: string[] = [];
  for (const { run, result } of shown) {
    const charts = Object.entries(chartsFor(result)).map(([name, svg]) => {
      const file = path.join(dir, `${result.scenario}-${name}.svg`);
      writeFileSync(file, svg);
      written.push(file);
      return file;
    });
    sections.push(section(run, result, charts.map((f) => path.relative(path.dirname(docs), f))));
  }
  mkdirSync(path.dirname(docs), { recursive: true });
  writeFileSync(docs, page(shown, sections));
  written.push(docs);
  return written;
}

const present = (r: ScenarioResult) =>
  TARGET_KINDS.flatMap((k) => (r.targets[k]?.ok ? [[k, r.targets[k]!] as [string, TargetResult]] : []));

function chartsFor(r: ScenarioResult): Record<string, string> {
  const targets = present(r);
  const out: Record<string, string> = {};
  const latency: Series[] = targets.flatMap(([kind, t]) =>
    Object.entries(t.latency ?? {}).map(([label, l], i) => ({
      name: `${kind}: ${label}`,
      values: PERCENTILES.map(([k]) => l[k]),
      color: SHADES[kind]?.[i],
    })),
  );
  if (latency.length > 0) {
    out.latency = barChart({
      title: `${r.scenario}: latency percentiles (log scale)`,
      categories: PERCENTILES.map(([, label]) => label),
      series: latency,
      unit: "ms",
      log: true,
    });
  }
  const rates = r.metrics.filter((m) => m.unit.endsWith("/s"));
  if (rates.length > 0 && targets.length > 0) {
    out.throughput = barChart({
      title: `${r.scenario}: throughput`,
      categories: rates.map((m) => `${m.label} (${m.unit})`),
      series: targets.map(([kind, t]) => ({
        name: kind,
        values: rates.map((m) => t.headline?.[m.key] ?? null),
        color: SHADES[kind]?.[0],
      })),
      unit: "per second",
      log: rates.length > 1,
    });
  }
  const searches = targets.flatMap(([kind, t]) =>
    ((t.details?.searches ?? []) as Search[]).map((x, i) => ({
      name: `${kind}: ${x.topology}`,
      points: x.steps.filter((st) => st.pass).sort((a, b) => a.deliveredPerS - b.deliveredPerS).map((st) => [st.deliveredPerS, st.p99] as [number, number]),
      color: SHADES[kind]?.[i],
    })),
  );
  if (searches.length > 0) {
    out["p99-by-rate"] = lineChart({ title: `${r.scenario}: delivery p99 of each passing step`, xLabel: "delivered events/s", xName: "delivered/s", unit: "ms", series: searches });
  }
  if (targets.some(([, t]) => (t.intervals?.length ?? 0) > 0)) {
    const over = (f: (p: NonNullable<TargetResult["intervals"]>[number]) => number) =>
      targets.map(([kind, t]) => ({
        name: kind,
        points: (t.intervals ?? []).map((p) => [p.t, f(p)] as [number, number]),
        color: SHADES[kind]?.[0],
      }));
    const xLabel = "seconds since measuring began";
    out["p99-over-time"] = lineChart({ title: `${r.scenario}: delivery p99 per interval`, xLabel, unit: "ms", series: over((p) => p.p99) });
    out["rss-over-time"] = lineChart({ title: `${r.scenario}: server RSS per interval`, xLabel, unit: "MB", series: over((p) => p.rssMb) });
  }
  return out;
}

const cell = (v: number | undefined | null) => (v === undefined || v === null ? "–" : formatNumber(v));

function row(r: ScenarioResult, m: Metric, first: string[] = []): string {
  // Recomputed rather than read back, so older result files follow the current rule.
  const ratio = r.pairs ? r.ratio[m.key] : ratios(r.metrics, r.targets)[m.key];
  const cells = [
    ...first,
    m.unit ? `${m.label} (${m.unit})` : m.label,
    ...TARGET_KINDS.map((k) => cell(r.targets[k]?.headline?.[m.key])),
    ratio === null || ratio === undefined ? "–" : `${formatNumber(ratio)}×`,
    m.better,
  ];
  return `| ${cells.join(" | ")} |`;
}

const measured = (r: ScenarioResult, m: Metric) => TARGET_KINDS.some((k) => r.targets[k]?.headline?.[m.key] !== undefined);

function table(r: ScenarioResult): string {
  const rows = r.metrics.filter((m) => measured(r, m)).map((m) => row(r, m));
  return ["| figure | baseline | service | service ÷ baseline | better |", "|---|---:|---:|---:|---|", ...rows].join("\n");
}

/** The overview: a few figures per scenario, each linking to its section. */
function overview(latest: Latest[]): string {
  const rows = latest.flatMap(({ result: r }) =>
    r.metrics
      .filter((m) => (r.summary ?? []).includes(m.key) && measured(r, m))
      .map((m, i) => row(r, m, [i === 0 ? `[${r.scenario}](#${r.scenario})` : ""])),
  );
  return [
    "| scenario | figure | baseline | service | service ÷ baseline | better |",
    "|---|---|---:|---:|---:|---|",
    ...rows,
  ].join("\n");
}

function section(run: RunResult, r: ScenarioResult, charts: string[]): string {
  const params = Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(" ");
  const notes = TARGET_KINDS.flatMap((k) => {
    const t = r.targets[k];
    if (!t) return [`- ${k}: not run`];
    if (!t.ok) return [`- ${k}: **failed**: ${t.error?.split("\n")[0]}`];
    return (t.notes ?? []).map((n) => `- ${k}: ${n}`);
  });
  return [
    `## ${r.scenario}`,
    "",
    r.description,
    "",
    `Run \`${run.runId}\` at ${r.startedAt}, commit ${run.git.commit?.slice(0, 12) ?? "none"}${run.git.dirty ? " (with uncommitted changes)" : ""}; parameters: \`${params}\`.`,
    "",
    table(r),
    "",
    ...charts.map((c) => `![${path.basename(c, ".svg")}](${c.split(path.sep).join("/")})`),
    "",
    ...(notes.length > 0 ? ["Notes:", "", ...notes, ""] : []),
  ].join("\n");
}

function page(latest: Latest[], sections: string[]): string {
  const newest = latest.map((l) => l.run).sort((a, b) => a.startedAt.localeCompare(b.startedAt)).at(-1);
  const m = newest?.machine;
  return [
    "# Benchmarks",
    "",
    "Generated by `npm run bench` from `bench/results/run-*.json` (see `bench/README.md`); do not edit by hand.",
    "Each scenario shows its latest run. The **baseline** is `bench/baseline/server.ts`, a bare uWebSockets.js",
    "server speaking the same frames with no validation, storage or auth (relaying through Redis in",
    "cross-node runs); *service ÷ baseline* is the cost of everything the service does on top of the transport.",
    "Latencies are measured from the moment a client sent a frame to the moment another client (or, for acks,",
    "the sender) received the result, on one shared monotonic clock. Loss counts events that did not reach every",
    "socket of their group; duplicates count events that reached a socket twice.",
    "",
    m
      ? `Machine of the latest run: ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, ${m.platform} ${m.release}, ` +
        `Node ${m.node}, load average ${m.loadavg.join(" ")} at start. Server and client workers share these ` +
        "cores, so figures are comparable between the targets of one run rather than absolute."
      : "No runs yet: run `npm run bench`.",
    "",
    ...(latest.length > 0 ? ["## Overview", "", overview(latest), ""] : []),
    // Hand-written: the targets and what changed each figure, kept beside the results.
    ...(existsSync(performanceLog) ? [readFileSync(performanceLog, "utf8").trim(), ""] : []),
    ...sections,
  ].join("\n");
}
