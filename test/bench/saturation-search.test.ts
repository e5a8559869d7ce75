// The saturation benchmark's search, driven by a fake server whose limit is known: it must end on
// the highest passing rate it tried, below the first failure, and say why it stopped.
import t from "tap";
import { search, type Step } from "../../bench/scenarios/saturation.ts";

/** A server that keeps up with every rate up to `limit` frames/s, 50 deliveries per frame. */
function server(limit: number) {
  const tried: number[] = [];
  const run = async (rate: number): Promise<Step> => {
    tried.push(rate);
    const pass = rate <= limit;
    return {
      rate,
      publishersPerGroup: 1,
      deliveredPerS: rate * 50,
      p50: 1,
      p99: pass ? 10 : 80,
      lossPct: 0,
      serverCpuPct: 50,
      serverCpuSPer1k: 0.001,
      generatorCpuMaxPct: 40,
      sendLagP99: 1,
      pass,
      why: pass ? undefined : "p99 80 ms > 50 ms",
    };
  };
  return { run, tried };
}
const quiet = { log: () => {} };

t.test("grows by 1.5x until a step fails, then narrows the gap twice", async (t) => {
  const s = server(1000);
  const r = await search("one node", { rate: 400 }, quiet, s.run);
  t.same(s.tried, [400, 600, 900, 1350, 1125, 1013], "400, 600, 900 pass; 1350 fails; bisection tries 1125 then 1013");
  t.equal(r.best?.rate, 900, "the best step is the highest rate that passed");
  t.equal(r.best?.deliveredPerS, 45_000);
  t.match(r.limit, /^1013 frames\/s \(p99 80 ms > 50 ms\)$/, "the limit names the lowest failing rate and why");
  t.ok(r.steps.every((st) => st.pass === st.rate <= 1000), "every step is recorded with its outcome");
});

t.test("a starting rate that already fails steps down until one passes", async (t) => {
  const s = server(150);
  const r = await search("one node", { rate: 400 }, quiet, s.run);
  t.same(s.tried.slice(0, 3), [400, 200, 100], "halves from the start");
  t.equal(r.best?.rate, 150, "then narrows between 100 (pass) and 200 (fail)");
  t.ok(r.best!.rate <= 150 && s.tried.filter((x) => x > 150).every((x) => !r.steps.find((st) => st.rate === x)?.pass));
});

t.test("a server that never passes has no best step, and the reason is kept", async (t) => {
  const s = server(0);
  const r = await search("one node", { rate: 400 }, quiet, s.run);
  t.equal(r.best, undefined);
  t.same(s.tried, [400, 200, 100], "gives up after three halvings");
  t.match(r.limit, /p99 80 ms > 50 ms/);
});

t.test("a server that never fails says the search should go higher", async (t) => {
  const s = server(Number.POSITIVE_INFINITY);
  const r = await search("one node", { rate: 10 }, quiet, s.run);
  t.equal(s.tried.length, 12, "stops after twelve growth steps");
  t.equal(r.best?.rate, s.tried.at(-1));
  t.match(r.limit, /still passed \(raise --rate/);
});
