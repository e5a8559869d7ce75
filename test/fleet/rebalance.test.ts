// The rebalancing decision (src/fleet/rebalance.ts) at its defaults: a node sheds only above the
// mean × (1 + REBALANCE_TOLERANCE) and at least REBALANCE_MIN_SOCKETS above the mean, down to the
// mean, at most REBALANCE_RATE of its sockets per second.
import t from "tap";
import { loadConfig } from "../../src/config/env.ts";
import { toShed } from "../../src/fleet/rebalance.ts";

const c = loadConfig({});
const opts = { tolerance: c.REBALANCE_TOLERANCE, ratePerSecond: c.REBALANCE_RATE, minExcess: c.REBALANCE_MIN_SOCKETS };

t.test("defaults", async (t) => {
  t.same(opts, { tolerance: 0.1, ratePerSecond: 0.05, minExcess: 100 });
});

t.test("a node at 2,000 of 4,000 over 4 nodes sheds 5 % of its sockets per second", async (t) => {
  t.equal(toShed({ size: 4, total: 4_000, mine: 2_000, moved: 0 }, opts, 1_000), 100);
  t.equal(toShed({ size: 4, total: 4_000, mine: 2_000, moved: 0 }, opts, 500), 50, "per tick, in proportion");
});

t.test("down to the mean, not below", async (t) => {
  t.equal(toShed({ size: 2, total: 2_300, mine: 1_300, moved: 0 }, opts, 1_000), 65, "rate-bound");
  t.equal(toShed({ size: 4, total: 4_000, mine: 1_140, moved: 0 }, { ...opts, minExcess: 1, ratePerSecond: 1 }, 1_000), 140, "exactly the excess");
});

t.test("within the tolerance, below the minimum excess, or alone: nothing", async (t) => {
  t.equal(toShed({ size: 4, total: 4_000, mine: 1_100, moved: 0 }, opts, 1_000), 0, "at mean + 10 %");
  t.equal(toShed({ size: 2, total: 30, mine: 25, moved: 0 }, opts, 1_000), 0, "25 vs a mean of 15: under the minimum excess");
  t.equal(toShed({ size: 1, total: 5_000, mine: 5_000, moved: 0 }, opts, 1_000), 0, "a fleet of one");
  t.equal(toShed({ size: 3, total: 0, mine: 0, moved: 0 }, opts, 1_000), 0);
});

t.test("while the fleet fills or empties faster than the tolerance per heartbeat, or on the first view: nothing", async (t) => {
  // Three nodes ramping to 5,000 sockets at ~2,500/s: this node is counted now, its peers up to a
  // heartbeat earlier, so it looks 1,300 above a mean of 1,233 without holding more than they do.
  t.equal(toShed({ size: 3, total: 3_700, mine: 2_000, moved: 2_500 }, opts, 1_000), 0, "a connect storm");
  t.equal(toShed({ size: 3, total: 3_700, mine: 2_000, moved: null }, opts, 1_000), 0, "no previous view");
  t.equal(toShed({ size: 3, total: 3_700, mine: 2_000, moved: 370 }, opts, 1_000), 100, "a fleet moving within the tolerance is compared");
});

t.test("bad values are refused at start, naming the variable", async (t) => {
  t.throws(() => loadConfig({ REBALANCE_TOLERANCE: "-1" }), /REBALANCE_TOLERANCE/);
  t.throws(() => loadConfig({ REBALANCE_RATE: "2" }), /REBALANCE_RATE must be at most 1/);
  t.throws(() => loadConfig({ REBALANCE_RATE: "fast" }), /REBALANCE_RATE/);
});
