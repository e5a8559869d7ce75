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

/** Every node within ±`tolerance` of the mean, and as many nodes as expected. */
export const isBalanced = (counts: number[], nodes: number, tolerance = 0.15) => counts.length === nodes && spreadPct(counts) <= tolerance * 100;

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
