// The housekeeping tick: one timer for the node's samplers and probe. Its listeners run once per
// tick in order with the tick's lateness, a blocked loop yields one late tick (no burst), and the
// timer runs only while someone listens and never holds a process open.
import { spawnSync } from "node:child_process";
import t from "tap";
import { Tick } from "../../src/health/tick.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const block = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

t.test("every listener runs once per tick, in the order they came, with the lateness of an idle loop near 0", async (t) => {
  const tick = new Tick(50);
  const calls: string[] = [];
  const lates: number[] = [];
  const offA = tick.on((late) => {
    calls.push("a");
    lates.push(late);
  });
  const offB = tick.on(() => calls.push("b"));
  await sleep(50 * 5 + 25);
  offA();
  offB();
  t.ok(calls.length >= 8 && calls.length <= 12, `4 to 6 ticks in 275 ms (${calls.length / 2})`);
  t.same(calls, calls.map((_, i) => (i % 2 === 0 ? "a" : "b")), "a then b at every tick");
  t.ok(Math.max(...lates) < 20, `an idle loop's ticks are on time (${lates.map((l) => l.toFixed(1)).join(", ")} ms late)`);
});

t.test("a blocked loop yields one tick as late as the block, less at most a period, and no burst after it", async (t) => {
  const tick = new Tick(100);
  const lates: number[] = [];
  const off = tick.on((late) => lates.push(late));
  t.teardown(off);
  await sleep(130);
  const before = lates.length;
  block(450);
  t.ok(tick.lateMs >= 450 - 100 - 5, `read in the same turn, the pending tick is late already (${tick.lateMs.toFixed(0)} ms)`);
  await sleep(20); // the late tick runs first
  const after = lates.slice(before);
  t.equal(after.length, 1, "one tick for the whole block");
  t.ok(after[0]! >= 450 - 100 - 5 && after[0]! <= 450 + 20, `it reads the block (${after[0]!.toFixed(0)} ms for 450)`);
  await sleep(60);
  t.equal(lates.length, before + 1, "the next is a whole period later, not a catch-up");
  await sleep(100);
  t.equal(lates.length, before + 2);
  t.ok(lates[lates.length - 1]! < 20, "and on time again");
});

t.test("the timer runs only while someone listens; a listener removed twice is removed once", async (t) => {
  const tick = new Tick(20);
  t.equal(tick.running, false);
  let a = 0;
  let b = 0;
  const offA = tick.on(() => a++);
  const offB = tick.on(() => b++);
  t.equal(tick.running, true);
  await sleep(70);
  offA();
  offA();
  t.equal(tick.running, true, "b still listens");
  const aAt = a;
  await sleep(70);
  t.equal(a, aAt, "a is called no more");
  t.ok(b > aAt, "b is");
  offB();
  t.equal(tick.running, false, "no listener, no timer");
  t.equal(tick.lateMs, 0);
  const bAt = b;
  tick.on(() => b++)();
  await sleep(70);
  t.equal(b, bAt, "added and removed at once: never called");
});

t.test("a listener may remove itself (or another) while the tick runs them", async (t) => {
  const tick = new Tick(20);
  const calls: string[] = [];
  const offB = tick.on(() => calls.push("b"));
  const offA = tick.on(() => {
    calls.push("a");
    offA();
    offB();
  });
  // (b came first, so b runs before a removes it.)
  await sleep(90);
  t.same(calls, ["b", "a"]);
  t.equal(tick.running, false);
});

t.test("the tick never keeps a process alive", async (t) => {
  const code = `import { Tick } from ${JSON.stringify(new URL("../../src/health/tick.ts", import.meta.url).pathname)};
new Tick(10).on(() => {}); setTimeout(() => console.log("done"), 50);`;
  const started = performance.now();
  const r = spawnSync(process.execPath, ["--import=tsx", "--input-type=module", "-e", code], { encoding: "utf8", timeout: 20_000 });
  t.equal(r.stdout.trim(), "done", r.stderr);
  t.equal(r.status, 0, "the process ended by itself");
  t.ok(performance.now() - started < 15_000);
});
