// The figures of a rebalance run, from what the workers and the nodes reported: pure functions,
// so test/bench/rebalance-figures.test.ts can check them without a cluster.
import { mergeHistograms, summarize, type LatencySummary } from "../lib/histogram.ts";

/** The most events in any window of `windowUs` (times sorted or not), per second. */
export function peakRate(timesUs: number[], windowUs = 1_000_000): number {
  const times = [...timesUs].sort((a, b) => a - b);
  let peak = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowUs) j++;
    peak = Math.max(peak, i - j + 1);
  }
  return (peak * 1e6) / windowUs;
}

/** How far the node farthest from the mean is from it, in % of the mean (0 for an empty fleet). */
export function spreadPct(counts: number[]): number {
  if (counts.length === 0) return 0;
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  if (mean === 0) return 0;
  return Math.round((Math.max(...counts.map((c) => Math.abs(c - mean))) / mean) * 1000) / 10;
}

/**
 * Every node within ±`tolerance` of the mean, as many nodes as expected, and at least 95 % of the
 * `expected` sockets connected: while moved clients wait out their jitter the counts can look even
 * with a quarter of the clients still on their way.
 */
export const isBalanced = (counts: number[], nodes: number, expected: number, tolerance = 0.15) =>
  counts.length === nodes && spreadPct(counts) <= tolerance * 100 && counts.reduce((a, b) => a + b, 0) >= 0.95 * expected;

/**
 * Latency of the events sent in [fromUs, toUs), merged over the workers' per-second histograms
 * (a second belongs to the window its start falls in, so windows are whole seconds).
 */
export function latencyBetween(bySecond: Record<string, string>[], fromUs: number, toUs: number): LatencySummary {
  const from = Math.floor(fromUs / 1e6);
  const to = Math.floor(toUs / 1e6);
  const picked: string[] = [];
  for (const w of bySecond) for (const [s, h] of Object.entries(w)) if (Number(s) >= from && Number(s) < to) picked.push(h);
  return summarize(mergeHistograms(picked));
}

export interface Completeness {
  /** Events a receiver should have had (its group's last seq) and did not. */
  missing: number;
  duplicates: number;
  gaps: number;
  /** Receivers whose last seq is not their group's last. */
  incomplete: number;
}

/** Each receiver against its group's last stored seq (from PostgreSQL). */
export function completeness(receivers: { group: string; last: number; duplicates: number; gaps: number }[], lastSeq: Map<string, number>): Completeness {
  const out: Completeness = { missing: 0, duplicates: 0, gaps: 0, incomplete: 0 };
  for (const r of receivers) {
    const want = lastSeq.get(r.group) ?? 0;
    if (r.last !== want) out.incomplete++;
    out.missing += Math.max(0, want - r.last);
    out.duplicates += r.duplicates;
    out.gaps += r.gaps;
  }
  return out;
}

/** A Prometheus histogram's cumulative buckets ("le" → count), summed over every node's /metrics text. */
export function promHistogram(texts: string[], name: string, labels = ""): { buckets: Map<number, number>; count: number; sum: number } {
  const buckets = new Map<number, number>();
  let count = 0;
  let sum = 0;
  const has = (line: string) => labels === "" || line.includes(labels);
  for (const text of texts) {
    for (const line of text.split("\n")) {
      const value = Number(line.slice(line.lastIndexOf(" ") + 1));
      if (line.startsWith(`${name}_bucket{`) && has(line)) {
        const at = line.indexOf('le="') + 4;
        const le = line.slice(at, line.indexOf('"', at));
        const bound = le === "+Inf" ? Infinity : Number(le);
        buckets.set(bound, (buckets.get(bound) ?? 0) + value);
      } else if ((line.startsWith(`${name}_count `) || line.startsWith(`${name}_count{`)) && has(line)) count += value;
      else if ((line.startsWith(`${name}_sum `) || line.startsWith(`${name}_sum{`)) && has(line)) sum += value;
    }
  }
  return { buckets, count, sum };
}

/** Count, mean and the bucket bounds holding p50/p90/p99 (the upper bound: "at most"), in seconds. */
export function promQuantiles(h: { buckets: Map<number, number>; count: number; sum: number }): { count: number; mean: number; p50: number; p90: number; p99: number } {
  const bounds = [...h.buckets.keys()].sort((a, b) => a - b);
  const at = (q: number) => {
    const want = q * h.count;
    for (const b of bounds) if (h.buckets.get(b)! >= want) return b;
    return Infinity;
  };
  if (h.count === 0) return { count: 0, mean: 0, p50: 0, p90: 0, p99: 0 };
  return { count: h.count, mean: Math.round((h.sum / h.count) * 1000) / 1000, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

/** Per second of sending in [fromUs, toUs): events, p50 and p99 in ms (the latency's shape over a move). */
export function latencyPerSecond(bySecond: Record<string, string>[], fromUs: number, toUs: number): { s: number; count: number; p50: number; p99: number }[] {
  const from = Math.floor(fromUs / 1e6);
  const to = Math.floor(toUs / 1e6);
  const out = [];
  for (let s = from; s < to; s++) {
    const l = summarize(mergeHistograms(bySecond.flatMap((w) => (w[String(s)] ? [w[String(s)]!] : []))));
    out.push({ s: s - from, count: l.count, p50: l.p50, p99: l.p99 });
  }
  return out;
}
