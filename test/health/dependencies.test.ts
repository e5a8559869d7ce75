// The background dependency probe: a round every intervalMs on the housekeeping tick, a database
// that hangs reported down after timeoutMs and never asked twice at once, and no query while the
// node's store proves the database answers.
import t from "tap";
import { DependencyMonitor, type DependencyState } from "../../src/health/dependencies.ts";
import { Tick } from "../../src/health/tick.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function monitor(opts: { answeredAt?: () => number; database?: () => Promise<void>; intervalMs?: number } = {}) {
  let asked = 0;
  let redis = true;
  const changes: [string, boolean][] = [];
  const tick = new Tick(20);
  const m = new DependencyMonitor(
    {
      database: () => {
        asked++;
        return opts.database ? opts.database() : Promise.resolve();
      },
      ...(opts.answeredAt ? { databaseAnsweredAt: opts.answeredAt } : {}),
      redis: () => redis,
    },
    { intervalMs: opts.intervalMs ?? 100, timeoutMs: 150, tick },
    (name, s: DependencyState) => changes.push([name, s.up]),
  );
  return { m, tick, changes, asked: () => asked, setRedis: (up: boolean) => (redis = up) };
}

t.test("a round at start and then every intervalMs, on the tick; stopped, none", async (t) => {
  const times: number[] = [];
  const { m, tick, asked } = monitor({ database: async () => void times.push(performance.now()) });
  m.start();
  t.equal(asked(), 1, "the first round at start");
  await sleep(530);
  t.ok(asked() >= 2 && asked() <= 7, `one round per 100 ms at most (${asked()} in 530 ms)`);
  const gaps = times.slice(1).map((x, i) => x - times[i]!);
  // Due half a tick early at most (90 ms), and on a tick: 100 to 120 ms on an idle loop.
  t.ok(gaps.every((g) => g >= 90 - 5), `rounds ${gaps.map((g) => g.toFixed(0)).join(", ")} ms apart`);
  m.stop();
  t.equal(tick.running, false, "the tick stops with its only listener");
  const at = asked();
  await sleep(250);
  t.equal(asked(), at);
});

t.test("a database that hangs is reported down after timeoutMs, with no second query while the first hangs; up again once it answers", async (t) => {
  let hang = true;
  let inFlight = 0;
  let maxInFlight = 0;
  const { m, changes, asked } = monitor({
    database: () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const done = () => inFlight--;
      return hang ? new Promise<void>(() => {}).finally(done) : Promise.resolve().finally(done);
    },
  });
  t.teardown(() => m.stop());
  m.start();
  const first = asked();
  await sleep(120);
  t.equal(m.state.database.up, true, "not yet: the deadline is 150 ms");
  t.equal(asked(), first, "no second query while the first hangs");
  await sleep(60);
  t.match(m.state.database, { up: false, error: /within 150 ms/ });
  t.same(changes, [["database", false]]);
  hang = false;
  await sleep(400);
  t.equal(m.state.database.up, true, "up again");
  t.same(changes, [["database", false], ["database", true]]);
  t.ok(m.queries > 1);
});

t.test("a store answer within the last tick stands for the query; an older one does not", async (t) => {
  let answeredAt = performance.now();
  const { m, asked } = monitor({ answeredAt: () => answeredAt });
  t.teardown(() => m.stop());
  m.start();
  t.equal(asked(), 0, "the store answered just now: no query");
  t.equal(m.state.database.up, true);
  // A busy store: it answers all the time.
  const busy = setInterval(() => (answeredAt = performance.now()), 5);
  await sleep(350);
  clearInterval(busy);
  t.equal(asked(), 0, "no query while the store keeps answering");
  // An idle store: its last answer ages past a tick, and the probe asks again.
  await sleep(150);
  t.ok(asked() >= 1, `the probe queries once the store is idle (${asked()})`);
});

t.test("a store answer cannot delay finding the database down past intervalMs + timeoutMs + two ticks", async (t) => {
  let answeredAt = -Infinity;
  let hang = false;
  const { m } = monitor({ answeredAt: () => answeredAt, database: () => (hang ? new Promise<void>(() => {}) : Promise.resolve()) });
  t.teardown(() => m.stop());
  m.start();
  await sleep(105); // just after a round
  answeredAt = performance.now(); // a last store answer, then the database stops answering
  // (Were a store answer within intervalMs proof enough, the next round would skip its query on
  // it, the one after would ask: down 345 ms after the answer here, 2 x interval + timeout.)
  hang = true;
  const cut = performance.now();
  while (m.state.database.up && performance.now() - cut < 2_000) await sleep(5);
  const ms = performance.now() - cut;
  t.equal(m.state.database.up, false);
  t.ok(ms <= 100 + 150 + 2 * 20 + 15, `reported down ${ms.toFixed(0)} ms after its last answer (interval 100, timeout 150, tick 20)`);
});

t.test("the bus is read at every tick, whatever the database's interval", async (t) => {
  const { m, changes, setRedis, asked } = monitor({ intervalMs: 60_000 });
  t.teardown(() => m.stop());
  m.start();
  t.equal(asked(), 1);
  setRedis(false);
  await sleep(70);
  t.match(m.state.redis, { up: false, error: "not connected" });
  setRedis(true);
  await sleep(70);
  t.equal(m.state.redis.up, true);
  t.same(changes, [["redis", false], ["redis", true]]);
  t.equal(asked(), 1, "no database round meanwhile");
});
