// The pacer behind the paced drain (src/gateway/drain.ts), at DRAIN_SPREAD_MS's default: n items
// are closed at an even rate over the window, never much faster in any second, each once; items
// that cannot close yet are retried; items that leave by themselves are not closed again.
import t from "tap";
import { pacedClose } from "../../src/gateway/drain.ts";
import { loadConfig } from "../../src/config/env.ts";

const DEFAULT_SPREAD_MS = loadConfig({}).DRAIN_SPREAD_MS;

t.test("3,000 items over the default 5 s window: about 600 a second, each closed once, done within the window", async (t) => {
  t.equal(DEFAULT_SPREAD_MS, 5_000, "DRAIN_SPREAD_MS defaults to 5000");
  const open = new Set(Array.from({ length: 3_000 }, (_, i) => i));
  const closedAt: number[] = [];
  const start = Date.now();
  const reports: number[] = [];
  await pacedClose(
    () => [...open],
    DEFAULT_SPREAD_MS,
    (i) => {
      open.delete(i);
      closedAt.push(Date.now() - start);
      return true;
    },
    (closed) => reports.push(closed),
  );
  const took = Date.now() - start;
  t.equal(open.size, 0, "every item closed");
  t.equal(closedAt.length, 3_000, "each once");
  t.ok(took >= DEFAULT_SPREAD_MS * 0.9 && took <= DEFAULT_SPREAD_MS + 500, `over the window (${took} ms)`);
  const perSecond = [0, 1, 2, 3, 4].map((s) => closedAt.filter((ms) => ms >= s * 1000 && ms < (s + 1) * 1000).length);
  t.ok(perSecond.every((n) => n <= 900), `never more than 1.5 × 600 in a second: ${perSecond.join(", ")}`);
  t.ok(perSecond.slice(0, 4).every((n) => n >= 300), "and never stalled");
  t.equal(reports.reduce((a, b) => a + b, 0), 3_000, "the progress reports add up");
});

t.test("an item with a frame in flight is skipped until it can close; items that left are not closed", async (t) => {
  const open = new Set([1, 2, 3, 4]);
  let busy = true;
  const closed: number[] = [];
  setTimeout(() => open.delete(4), 50); // leaves by itself
  setTimeout(() => (busy = false), 150);
  await pacedClose(() => [...open], 400, (i) => {
    if (i === 1 && busy) return false;
    open.delete(i);
    closed.push(i);
    return true;
  });
  t.ok(closed.includes(1), "the busy one closed once it could");
  t.notOk(closed.includes(4) && closed.indexOf(4) !== closed.lastIndexOf(4), "none twice");
  t.equal(new Set(closed).size, closed.length);
});

t.test("a window of 0 closes nothing itself (the caller closes all at once)", async (t) => {
  let calls = 0;
  await pacedClose(() => [1, 2], 0, () => ++calls > 0);
  t.equal(calls, 0);
});
