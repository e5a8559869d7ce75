// The background dependency probe: a round every intervalMs on the housekeeping tick, a database
// that hangs reported down after timeoutMs and never asked twice at once, and no query while the
// node's store proves the database answers.
import t from "tap";
import { DependencyMonitor, type DependencyState } from "../../src/health/dependencies.ts";
import { Tick } from "../../src/health/tick.ts";
import { eventually } from "../helpers/probe.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits until `done()` holds, polling every 5 ms, for at most `ms` (then the assertion after it fails). */
const until = (done: () => boolean, ms = 5_000) => eventually(done, ms, 5);

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
  const from = performance.now();
  m.start();
  t.equal(asked(), 1, "the first round at start");
  await until(() => asked() >= 4);
  const took = performance.now() - from;
  t.ok(asked() >= 4 && asked() <= took / 90 + 1, `one round per 100 ms at most (${asked()} in ${took.toFixed(0)} ms)`);
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
  await until(() => m.state.database.up);
  t.equal(m.state.database.up, true, "up again");
  t.same(changes, [["database", false], ["database", true]]);
  t.ok(m.queries > 1);
});

t.test("a store answer within the last tick stands for the query; an older one does not", async (t) => {
  // A busy store answers all the time: its last answer is always now, however the machine
  // schedules this process. Then it goes idle, and its last answer ages.
  let busy = true;
  let lastAnswer = -Infinity;
  const { m, asked, tick } = monitor({ answeredAt: () => (busy ? performance.now() : lastAnswer) });
  t.teardown(() => m.stop());
  m.start();
  t.equal(asked(), 0, "the store answered just now: no query");
  t.equal(m.state.database.up, true);
  let ticks = 0;
  const off = tick.on(() => ticks++);
  await until(() => ticks >= 15);
  t.equal(asked(), 0, `no query while the store keeps answering (${ticks} ticks, 3 rounds due)`);
  busy = false;
  lastAnswer = performance.now();
  await until(() => asked() >= 1);
  off();
  t.ok(performance.now() - lastAnswer > tick.everyMs, "the probe queries once the store's last answer is older than a tick");
});

t.test("a store answer cannot delay finding the database down past intervalMs + timeoutMs + two ticks", async (t) => {
  // The worst case: the store answers right as a round starts, then the database stops answering.
  // Were an answer within intervalMs proof enough, the next round (due intervalMs - half a tick
  // later, so on the tick before the answer is intervalMs old) would skip its query on it and only
  // the one after would ask: down 2 x interval + timeout after the answer, ~18 ticks here, where
  // the bound is interval + timeout + two ticks (~15.5).
  // Counted in ticks: a busy machine delays ticks (and so rounds) but never brings two closer
  // than a tick, so the ticks seen until the report bound it however this process is scheduled.
  const intervalMs = 110;
  let answeredAt = -Infinity;
  let calls = 0;
  let ticks = 0;
  const { m, tick } = monitor({
    intervalMs,
    answeredAt: () => answeredAt,
    database: () => {
      if (++calls > 2) return new Promise<void>(() => {});
      if (calls === 2) {
        answeredAt = performance.now(); // the last answer the store gets
        ticks = 0;
      }
      return Promise.resolve();
    },
  });
  t.teardown(() => m.stop());
  // (Added before the monitor's own listener, so it runs first at each tick: the ticks counted are
  // those that ran while the database still read up.)
  const off = tick.on(() => {
    if (m.state.database.up) ticks++;
  });
  m.start();
  await until(() => !m.state.database.up, 3_000);
  off();
  const ms = performance.now() - answeredAt;
  t.equal(m.state.database.up, false);
  t.ok(ticks <= (intervalMs + 150) / 20 + 2, `reported down ${ticks} ticks after its last answer (seen ${ms.toFixed(0)} ms after it) (interval ${intervalMs}, timeout 150, tick 20)`);
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
