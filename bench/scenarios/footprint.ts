// A node's footprint with no traffic: how long from spawn to /readyz 200, and its RSS once idle,
// for the service on PostgreSQL (a fresh database) and on its embedded default (a fresh
// DATA_DIR, so PGlite's initdb is included), against the bare uWebSockets.js baseline started
// the same way. Both run as plain JavaScript (`node dist/main.js`, the baseline bundled), so
// the figures are those of a production start.
import { rssKb } from "../lib/proc.ts";
import { pick, type Scenario } from "../lib/scenario.ts";
import type { Measurement } from "../lib/results.ts";
import { sleep } from "../lib/clock.ts";

type Params = { starts: number; settle: number };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const round1 = (x: number) => Math.round(x * 10) / 10;

export const footprint: Scenario<Params> = {
  name: "footprint",
  description: "an idle node: spawn to ready, and RSS after it settles (PostgreSQL, and the embedded default for the service)",
  metrics: [
    { key: "ready_ms", label: "spawn to ready (median of starts)", unit: "ms", better: "lower" },
    { key: "idle_rss_5s_mb", label: "idle RSS 5 s after ready", unit: "MB", better: "lower" },
    { key: "idle_rss_mb", label: "idle RSS once settled", unit: "MB", better: "lower" },
    { key: "embedded_ready_ms", label: "embedded, fresh DATA_DIR: spawn to ready", unit: "ms", better: "lower" },
    { key: "embedded_idle_rss_mb", label: "embedded: idle RSS once settled", unit: "MB", better: "lower" },
  ],
  summary: ["ready_ms", "idle_rss_mb", "embedded_idle_rss_mb"],
  params: (opts) => ({ starts: pick(opts.sizes.nodes, 3), settle: pick(opts.sizes.duration, 20) }),
  nodes: () => 1,
  redis: () => false,
  async measure(target, p, _runTag, ctx) {
    const node = target.nodes[0]!;
    const readies = [node.readyMs];
    const idle = async (pid: number) => {
      await sleep(5_000);
      const at5 = rssKb(pid) / 1024;
      await sleep(Math.max(0, p.settle - 5) * 1000);
      return { at5, settled: rssKb(pid) / 1024 };
    };
    const rss = await idle(node.pid);
    for (let i = 1; i < p.starts; i++) {
      const t = await ctx.startTarget({ nodes: 1, redis: false, tag: `s${i}` });
      readies.push(t.nodes[0]!.readyMs);
      await t.stop();
    }
    const headline: Record<string, number> = {
      ready_ms: median(readies),
      idle_rss_5s_mb: round1(rss.at5),
      idle_rss_mb: round1(rss.settled),
    };
    if (target.kind === "service") {
      const t = await ctx.startTarget({ nodes: 1, redis: false, tag: "e", embedded: true });
      headline.embedded_ready_ms = t.nodes[0]!.readyMs;
      headline.embedded_idle_rss_mb = round1((await idle(t.nodes[0]!.pid)).settled);
      await t.stop();
    }
    ctx.log(`starts: ${readies.join(", ")} ms`);
    const notes = ["RSS \"once settled\" is read after the settle time (--duration, default 20 s): V8 gives back its young generation only after some idle seconds"];
    const m: Measurement = { headline, latency: {}, details: { readyMs: readies }, notes };
    return m;
  },
};
