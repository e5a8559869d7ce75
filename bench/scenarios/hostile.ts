// Issue 10's hostile mix against one node: slow readers, replay droppers, pipelined file
// downloads, oversize uploads, large uploads at the file cap back to back, and expiring tokens at once (test/helpers/hostile-mix.ts, the same
// mix test/security/hostile-mix.test.ts holds to its budgets), while a victim on its own group
// measures typing round trips. Reports the victim's latency, first quiet then under the mix,
// and the node's RSS. The baseline (no storage, no limits) runs the same clients: what it
// cannot serve (files, replays, tokens) it answers its own way.
import { rssKb } from "../lib/proc.ts";
import { latencyMetrics, pick, type Scenario } from "../lib/scenario.ts";
import { newHistogram, summarize } from "../lib/histogram.ts";
import { percentile, prepareMix, RSS_BUDGET_MIB, runMix } from "../../test/helpers/hostile-mix.ts";

const SECRET = "bench-hostile-secret-of-at-least-32-bytes";
const MiB = 1024 * 1024;

type Params = { duration: number; quiet: number; messages: number };

export const hostile: Scenario<Params> = {
  name: "hostile",
  description: "victim typing round trips and node RSS while hostile clients (slow readers, replay droppers, pipelined downloads, oversize uploads, 3 clients uploading 5 MiB files back to back, expiring tokens) hit the node",
  metrics: [
    { key: "quiet_p99_ms", label: "victim round trip p99, quiet", unit: "ms", better: "lower" },
    ...latencyMetrics("", "victim round trip under the mix"),
    { key: "victim_unanswered", label: "victim frames unanswered", unit: "", better: "lower" },
    { key: "rss_before_mb", label: "node RSS before the mix", unit: "MB", better: "lower" },
    { key: "rss_peak_mb", label: "node RSS peak under the mix", unit: "MB", better: "lower" },
  ],
  summary: ["quiet_p99_ms", "p99_ms", "rss_peak_mb"],
  params: (opts) => ({ duration: pick(opts.sizes.duration, 60), quiet: 10, messages: 200 }),
  nodes: () => 1,
  redis: () => false,
  env: () => ({ JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_S: "0" }),
  async measure(target, p, runTag) {
    const node = target.nodes[0]!;
    const bigGroup = `${runTag}-hostile-big`;
    const filePath = await prepareMix(node.port, SECRET, bigGroup, { messages: p.messages, fileBytes: 3 * MiB }).catch(() => "/files/none");
    const mixTarget = { port: node.port, jwtSecret: SECRET, bigGroup, filePath, maxFileBytes: 5 * MiB, maxFrameBytes: 8 * MiB };
    const everyone = ["slow reader", "replay dropper", "pipelined downloads", "oversize upload", "large upload", "token expiry"];
    const quiet = await runMix(mixTarget, p.quiet * 1000, { victimGroup: `${runTag}-victim-q`, skip: everyone });
    const rssBefore = rssKb(node.pid) / 1024;
    let peak = rssBefore;
    const sampler = setInterval(() => {
      if (node.child.exitCode === null) peak = Math.max(peak, rssKb(node.pid) / 1024);
    }, 250);
    const mix = await runMix(mixTarget, p.duration * 1000, { victimGroup: `${runTag}-victim` });
    clearInterval(sampler);
    const h = newHistogram();
    for (const ms of mix.rtts) h.recordValue(Math.max(1, Math.round(ms * 1000)));
    const latency = summarize(h);
    const notes: string[] = [];
    if (node.child.exitCode !== null || node.child.signalCode !== null) notes.push(`the node exited during the mix (${node.child.exitCode ?? node.child.signalCode})`);
    if (mix.victimLost > 0) notes.push(`${mix.victimLost} victim frames got no answer`);
    if (target.kind === "service" && peak > RSS_BUDGET_MIB) notes.push(`node RSS peaked at ${Math.round(peak)} MB, over its ${RSS_BUDGET_MIB} MiB budget`);
    if (target.kind === "service" && latency.p99 > 500) notes.push(`victim round trip p99 ${latency.p99} ms, over its 500 ms budget`);
    return {
      headline: {
        // The first 2 s of the quiet phase warm the victim's path up after the fixtures.
        quiet_p99_ms: Math.round(percentile(quiet.rtts.slice(20), 99) * 10) / 10,
        p50_ms: latency.p50,
        p90_ms: latency.p90,
        p99_ms: latency.p99,
        p999_ms: latency.p999,
        max_ms: latency.max,
        victim_unanswered: mix.victimLost,
        rss_before_mb: Math.round(rssBefore),
        rss_peak_mb: Math.round(peak),
      },
      latency: { "victim round trip": latency },
      details: { actors: mix.actors, victimRoundTrips: mix.rtts.length },
      notes,
    };
  },
};
