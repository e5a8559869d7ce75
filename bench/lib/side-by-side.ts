// The figures of bench/side-by-side-typing.ts: per server, CPU per 1,000 deliveries over its own
// slots, and against the first server (the baseline) both the ratio of the sums and the median of
// the rounds' ratios (a round's slots are seconds apart, so each round's ratio sees one load; the
// median keeps a round disturbed by a neighbour's burst from deciding).
import { median } from "./stats.ts";

export interface Slot {
  /** CPU of the server (and its database backends) during the slot, ms. */
  cpuMs: number;
  delivered: number;
}

export interface ServerFigures {
  name: string;
  cpuMs: number;
  delivered: number;
  msPer1k: number;
  roundMsPer1k: number[];
  ratio: number;
  medianRoundRatio: number;
}

/** `slots[i][r]`: server i's slot in round r (every server has one slot per round). */
export function sideBySide(names: readonly string[], slots: readonly (readonly Slot[])[]): ServerFigures[] {
  const per1k = (s: Slot) => (s.cpuMs / s.delivered) * 1000;
  const figures = names.map((name, i) => {
    const cpuMs = slots[i]!.reduce((a, s) => a + s.cpuMs, 0);
    const delivered = slots[i]!.reduce((a, s) => a + s.delivered, 0);
    return { name, cpuMs, delivered, msPer1k: (cpuMs / delivered) * 1000, roundMsPer1k: slots[i]!.map(per1k) };
  });
  const ref = figures[0]!;
  return figures.map((f) => ({
    ...f,
    ratio: f.msPer1k / ref.msPer1k,
    medianRoundRatio: median(f.roundMsPer1k.map((x, r) => x / ref.roundMsPer1k[r]!)),
  }));
}
