// Command-line flags of `npm run bench`. Scenario sizes are optional overrides: each scenario
// keeps its own defaults and reads only the flags that mean something to it.
import os from "node:os";
import { parseArgs } from "node:util";
import { TARGET_KINDS, type TargetKind } from "./targets.ts";

export const SIZE_FLAGS = {
  duration: "seconds measured (connections: seconds the idle sockets are held; rebalance: seconds before the scale-up)",
  warmup: "seconds of traffic before measuring starts",
  groups: "chat groups",
  subscribers: "listening sockets per group",
  publishers: "publishing sockets per group",
  rate: "frames per second over all publishers (create: 0 = closed loop)",
  inflight: "closed loop: creates awaiting their ack per publisher",
  "create-rate": "soak: creates per second besides the typing rate",
  nodes: "cross-node: service nodes",
  connections: "connections: idle sockets to open; rebalance: receiving sockets",
  concurrency: "handshakes in flight per client worker",
  "source-addresses": "connections: spread sockets over 127.0.0.1..127.0.0.N (0 = let the kernel pick)",
  interval: "soak: seconds per sample",
  rounds: "cross-node: alternating one-Redis / Redis Cluster measurements",
  pairs: "baseline/service measurements, alternating which goes first; ratios are the medians of the pairs' (default 1)",
} as const;

export type SizeFlag = keyof typeof SIZE_FLAGS;
export type Sizes = Partial<Record<SizeFlag, number>>;

export interface Options {
  scenarios: string[];
  targets: TargetKind[];
  workers: number;
  /** The operation cross-node sends (the other scenarios each have their own). */
  op: "typing" | "create" | undefined;
  sizes: Sizes;
  pgAdminUrl: string;
  redisUrl: string;
  report: boolean;
  help: boolean;
}

export function parseOptions(argv: string[], known: readonly string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      scenario: { type: "string", default: "all" },
      target: { type: "string", default: "both" },
      workers: { type: "string" },
      op: { type: "string" },
      "pg-url": { type: "string" },
      "redis-url": { type: "string" },
      "no-report": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      ...Object.fromEntries(Object.keys(SIZE_FLAGS).map((k) => [k, { type: "string" as const }])),
    },
  });
  const str = (k: string) => values[k as keyof typeof values] as string | undefined;

  const scenarios = str("scenario") === "all" ? [...known] : str("scenario")!.split(",").map((s) => s.trim());
  for (const s of scenarios) if (!known.includes(s)) throw new Error(`unknown scenario "${s}" (known: ${known.join(", ")})`);

  const target = str("target")!;
  const targets = target === "both" ? [...TARGET_KINDS] : [target as TargetKind];
  if (!targets.every((t) => TARGET_KINDS.includes(t))) throw new Error(`--target must be baseline, service or both`);

  const op = str("op");
  if (op !== undefined && op !== "typing" && op !== "create") throw new Error(`--op must be typing or create`);

  const sizes: Sizes = {};
  for (const k of Object.keys(SIZE_FLAGS) as SizeFlag[]) {
    const raw = str(k);
    if (raw === undefined) continue;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${k} must be a number >= 0 (got "${raw}")`);
    sizes[k] = n;
  }

  return {
    scenarios,
    targets,
    // The server needs a core of its own; on a two-core machine that leaves room for two
    // workers only if they are not saturated, which the results report either way.
    workers: str("workers") ? Math.max(1, Number(str("workers"))) : Math.max(2, os.cpus().length - 1),
    op,
    sizes,
    pgAdminUrl: str("pg-url") ?? process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    redisUrl: str("redis-url") ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    report: !values["no-report"],
    help: values.help === true,
  };
}

export function usage(scenarios: { name: string; description: string }[]): string {
  const pad = (s: string) => s.padEnd(22);
  return [
    "usage: npm run bench -- [--scenario a,b|all] [--target both|baseline|service] [flags]",
    "",
    "scenarios:",
    ...scenarios.map((s) => `  ${pad(s.name)}${s.description}`),
    "",
    "flags:",
    `  ${pad("--workers N")}client worker processes (default: max(2, cpus - 1))`,
    `  ${pad("--op typing|create")}cross-node: operation to send (default typing)`,
    `  ${pad("--pg-url URL")}PostgreSQL that may create/drop databases (env BENCH_PG_URL)`,
    `  ${pad("--redis-url URL")}Redis for cross-node runs (env REDIS_URL)`,
    `  ${pad("--no-report")}do not regenerate docs/benchmarks.md and the charts`,
    ...Object.entries(SIZE_FLAGS).map(([k, v]) => `  ${pad(`--${k} N`)}${v}`),
  ].join("\n");
}
