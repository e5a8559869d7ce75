// The housekeeping tick: one timer for the node's samplers and probe. Its listeners run once per
// tick in order with the tick's lateness, a blocked loop yields one late tick (no burst), and the
// timer runs only while someone listens and never holds a process open.
import { spawnSync } from "node:child_process";
import t from "tap";
import { Tick } from "../../src/health/tick.ts";
import { eventually } from "../helpers/probe.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const block = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

// Lateness is measured against the due time, so `now - late` is the tick's due time: the
// tests below check due times, which do not depend on how busy the machine is. (Node counts a
// timer from the loop's cached clock, which may trail performance.now() by the time the loop
// turn has run so far: a tick can come a few ms before its due time, read as 0 late. Hence the
// slack below the period; a catch-up burst would show as a gap near 0.)

t.test("every listener runs once per tick, in the order they came; each tick is due a period after the last ran", async (t) => {
  const tick = new Tick(50);
  const calls: string[] = [];
  const ticks: { due: number; ran: number }[] = [];
  const armedAt = performance.now();
  const offA = tick.on((late) => {
    const ran = performance.now();
    calls.push("a");
    ticks.push({ due: ran - late, ran });
  });
  const offB = tick.on(() => calls.push("b"));
  // (Polled, with a bound: a starved machine may take much longer than five periods for five ticks.)
  await eventually(() => ticks.length >= 5, 10_000);
  const took = performance.now() - armedAt;
  offA();
  offB();
  t.ok(ticks.length >= 5 && ticks.length <= took / 50 + 1, `at most one tick per 50 ms (${ticks.length} in ${took.toFixed(0)} ms)`);
  t.same(calls, calls.map((_, i) => (i % 2 === 0 ? "a" : "b")), "a then b at every tick");
  t.ok(Math.abs(ticks[0]!.due - (armedAt + 50)) < 3, "the first is due a period after the first listener came");
  for (let i = 1; i < ticks.length; i++) {
    const gap = ticks[i]!.due - ticks[i - 1]!.ran;
    t.ok(gap >= 40 && gap < 53, `tick ${i + 1} is due a period after tick ${i} ran (${gap.toFixed(1)} ms)`);
  }
});

t.test("a blocked loop yields one tick as late as the block, less at most a period, and no burst after it", async (t) => {
  const tick = new Tick(100);
  const ticks: { late: number; ran: number }[] = [];
  const off = tick.on((late) => ticks.push({ late, ran: performance.now() }));
  t.teardown(off);
  await sleep(130);
  const before = ticks.length;
  // How late the pending tick already is when the block starts (0 unless this process was kept
  // waiting for a core past its due time): its lateness after the block is that plus the block.
  const lateBefore = tick.lateMs;
  const blockedAt = performance.now();
  block(450);
  t.ok(tick.lateMs >= 450 - 100 - 1, `read in the same turn, the pending tick is late already (${tick.lateMs.toFixed(0)} ms)`);
  await sleep(250);
  const after = ticks.slice(before);
  t.ok(after.length >= 1, "the late tick ran");
  const late = after[0]!;
  t.ok(late.late >= 450 - 100 - 1 && late.late <= late.ran - blockedAt + lateBefore + 1, `it reads the block (${late.late.toFixed(0)} ms for 450)`);
  for (let i = 1; i < after.length; i++) {
    const gap = after[i]!.ran - after[i]!.late - after[i - 1]!.ran;
    t.ok(gap >= 90 && gap < 103, `the next is due a whole period after it, not at once to catch up (${gap.toFixed(1)} ms)`);
  }
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
  // A process the tick kept alive would run until this timeout kills it (status null): generous,
  // because starting node with tsx takes seconds on a starved machine.
  const r = spawnSync(process.execPath, ["--import=tsx", "--input-type=module", "-e", code], { encoding: "utf8", timeout: 90_000 });
  t.equal(r.stdout.trim(), "done", r.stderr);
  t.equal(r.status, 0, "the process ended by itself");
});
