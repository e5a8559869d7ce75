// Concurrent large uploads alone: three clients upload files at the 5 MiB cap back to back, two
// in flight each, never backing off (the hostile mix's `large upload` actor, test/helpers/hostile-mix.ts),
// while a victim on its own group measures typing round trips, first quiet then under the
// uploads. The service holds them to MAX_UPLOAD_BYTES_PER_SECOND (8 MiB/s),
// MAX_USER_UPLOAD_BYTES_PER_SECOND (4 MiB/s) and MAX_UPLOAD_INFLIGHT_BYTES (24 MiB) and stores each file; the baseline parses every
// frame and acknowledges it, as fast as the clients send. Reports the victim's latency, the
// uploads taken per second, and node RSS.
import { rssKb } from "../lib/proc.ts";
import { latencyMetrics, pick, type Scenario } from "../lib/scenario.ts";
import { newHistogram, summarize } from "../lib/histogram.ts";
import { percentile, runMix } from "../../test/helpers/hostile-mix.ts";

const SECRET = "bench-uploads-secret-of-at-least-32-bytes";
const MiB = 1024 * 1024;
const OTHERS = ["slow reader", "replay dropper", "pipelined downloads", "oversize upload", "token expiry"];

type Params = { duration: number; quiet: number };

export const uploads: Scenario<Params> = {
  name: "uploads",
  description: "victim typing round trips and node RSS while 3 clients upload 5 MiB files back to back (2 in flight each, no back-off)",
  metrics: [
    { key: "quiet_p99_ms", label: "victim round trip p99, quiet", unit: "ms", better: "lower" },
    ...latencyMetrics("", "victim round trip under the uploads"),
    { key: "uploads_per_s", label: "uploads answered with an ack per second", unit: "/s", better: "higher" },
    { key: "refused_per_s", label: "uploads refused (rate_limited) per second", unit: "/s", better: "lower" },
    { key: "rss_peak_mb", label: "node RSS peak under the uploads", unit: "MB", better: "lower" },
  ],
  summary: ["quiet_p99_ms", "p99_ms", "uploads_per_s", "rss_peak_mb"],
  params: (opts) => ({ duration: pick(opts.sizes.duration, 60), quiet: 10 }),
  nodes: () => 1,
  redis: () => false,
  env: () => ({ JWT_SECRET: SECRET }),
  async measure(target, p, runTag) {
    const node = target.nodes[0]!;
    const mixTarget = { port: node.port, jwtSecret: SECRET, bigGroup: `${runTag}-none`, filePath: "/files/none", maxFileBytes: 5 * MiB, maxFrameBytes: 8 * MiB };
    const quiet = await runMix(mixTarget, p.quiet * 1000, { victimGroup: `${runTag}-victim-q`, skip: [...OTHERS, "large upload"] });
    let peak = rssKb(node.pid) / 1024;
    const sampler = setInterval(() => {
      if (node.child.exitCode === null) peak = Math.max(peak, rssKb(node.pid) / 1024);
    }, 250);
    const mix = await runMix(mixTarget, p.duration * 1000, { victimGroup: `${runTag}-victim`, skip: OTHERS });
    clearInterval(sampler);
    const h = newHistogram();
    for (const ms of mix.rtts) h.recordValue(Math.max(1, Math.round(ms * 1000)));
    const latency = summarize(h);
    const outcomes = mix.actors["large upload"]?.closes ?? {};
    const notes: string[] = [];
    if (node.child.exitCode !== null || node.child.signalCode !== null) notes.push(`the node exited during the uploads (${node.child.exitCode ?? node.child.signalCode})`);
    if (mix.victimLost > 0) notes.push(`${mix.victimLost} victim frames got no answer`);
    return {
      headline: {
        quiet_p99_ms: Math.round(percentile(quiet.rtts.slice(20), 99) * 10) / 10,
        p50_ms: latency.p50,
        p90_ms: latency.p90,
        p99_ms: latency.p99,
        p999_ms: latency.p999,
        max_ms: latency.max,
        uploads_per_s: Math.round(((outcomes.stored ?? 0) / p.duration) * 100) / 100,
        refused_per_s: Math.round(((outcomes.rate_limited ?? 0) / p.duration) * 100) / 100,
        rss_peak_mb: Math.round(peak),
      },
      latency: { "victim round trip": latency },
      details: { outcomes, victimRoundTrips: mix.rtts.length },
      notes,
    };
  },
};
