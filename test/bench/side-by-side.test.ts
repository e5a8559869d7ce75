// bench/side-by-side-typing.ts's figures: CPU per 1,000 deliveries per server over its slots, the
// ratio of the sums against the first server, and the median of the rounds' ratios.
import t from "tap";
import { sideBySide } from "../../bench/lib/side-by-side.ts";

t.test("per 1,000 deliveries, the ratio of the sums, and the median of the rounds' ratios", async (t) => {
  const [base, svc] = sideBySide(
    ["base", "svc"],
    [
      [{ cpuMs: 10, delivered: 1000 }, { cpuMs: 10, delivered: 1000 }, { cpuMs: 20, delivered: 1000 }],
      // round ratios 1.1, 1.2, 2.0 (a disturbed round): median 1.2
      [{ cpuMs: 11, delivered: 1000 }, { cpuMs: 12, delivered: 1000 }, { cpuMs: 40, delivered: 1000 }],
    ],
  );
  t.equal(base!.msPer1k, 40 / 3);
  t.same(base!.roundMsPer1k, [10, 10, 20]);
  t.equal(base!.ratio, 1);
  t.equal(base!.medianRoundRatio, 1);
  t.equal(svc!.msPer1k, 21);
  t.equal(svc!.ratio, 21 / (40 / 3), "the sums: 63 ms against 40 for the same deliveries");
  t.equal(Math.round(svc!.medianRoundRatio * 1000) / 1000, 1.2, "the disturbed round does not decide the median");
});

t.test("rounds with different deliveries are weighed per delivery", async (t) => {
  const [, svc] = sideBySide(
    ["base", "svc"],
    [[{ cpuMs: 10, delivered: 1000 }], [{ cpuMs: 10, delivered: 500 }]],
  );
  t.equal(svc!.ratio, 2);
  t.equal(svc!.medianRoundRatio, 2);
});
