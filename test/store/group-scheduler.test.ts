// The write scheduler on its own (no database): a group's jobs run in submission order, one
// batch at a time per group; unrelated groups do not wait for each other; at most
// `concurrency` batches run at once; queued items are batched; stale jobs are refused unrun.
import { mock } from "node:test";
import t, { type Test } from "tap";
import { loadConfig } from "../../src/config/env.ts";
import { GroupScheduler, type SchedulerOptions, type Settled } from "../../src/store/group-scheduler.ts";

type Item = { group: string; n: number; weight?: number };

/** A fake store: records every batch, and finishes each when the test says so (or after a delay). */
function harness(opts: Partial<SchedulerOptions<Item>> = {}, delay?: () => number, hooks: { start?: (i: Item[]) => void; end?: (i: Item[]) => void } = {}) {
  const batches: { items: Item[]; release: () => void; fail: (e: Error) => void }[] = [];
  let running = 0;
  let peak = 0;
  const write = (items: Item[]) =>
    new Promise<Settled<string>[]>((resolve, reject) => {
      running++;
      peak = Math.max(peak, running);
      hooks.start?.(items);
      const finish = (f: () => void) => () => {
        running--;
        hooks.end?.(items);
        f();
      };
      const b = {
        items,
        release: finish(() => resolve(items.map((i) => ({ ok: true as const, value: `${i.group}:${i.n}` })))),
        fail: (e: Error) => finish(() => reject(e))(),
      };
      batches.push(b);
      if (delay) setTimeout(b.release, delay());
    });
  const s = new GroupScheduler<Item, string>(write, {
    concurrency: 4,
    maxBatch: 500,
    maxBatchWeight: 1e9,
    weigh: (i) => i.weight ?? 1,
    maxWaitMs: 60_000,
    ...opts,
  });
  return { s, batches, peak: () => peak, running: () => running };
}

const tick = () => new Promise((r) => setImmediate(r));

t.test("each group's items are written in submission order, never two batches of one group at once, under random delays", async (t) => {
  const inFlight = new Set<string>();
  const overlaps: string[] = [];
  const enter = (g: string) => (inFlight.has(g) ? overlaps.push(g) : inFlight.add(g));
  const { s, batches, peak } = harness({ concurrency: 4, maxBatch: 7 }, () => Math.random() * 4, {
    start: (items) => new Set(items.map((i) => i.group)).forEach(enter),
    end: (items) => new Set(items.map((i) => i.group)).forEach((g) => inFlight.delete(g)),
  });
  const groups = Array.from({ length: 20 }, (_, i) => `g${i}`);
  const sent = new Map(groups.map((g) => [g, 0]));
  const written = new Map<string, number[]>();
  const acks: Promise<string>[] = [];
  const soloOrder: string[] = [];
  for (let round = 0; round < 40; round++) {
    for (let k = 0; k < 15; k++) {
      const g = groups[Math.floor(Math.random() * groups.length)]!;
      const n = sent.get(g)! + 1;
      sent.set(g, n);
      if (Math.random() < 0.1) {
        // A solo job (an update) takes its place in the group's order too.
        acks.push(
          s.solo(g, async () => {
            enter(g);
            (written.get(g) ?? written.set(g, []).get(g)!).push(n);
            soloOrder.push(`${g}:${n}`);
            await new Promise((r) => setTimeout(r, Math.random() * 3));
            inFlight.delete(g);
            return `${g}:${n}`;
          }),
        );
      } else {
        acks.push(s.submit(g, { group: g, n }));
      }
    }
    await new Promise((r) => setTimeout(r, Math.random() * 3));
  }
  // Track batch membership as batches start (the fake write is called at start).
  const results = await Promise.all(acks);
  for (const b of batches) {
    for (const i of b.items) (written.get(i.group) ?? written.set(i.group, []).get(i.group)!).push(i.n);
  }
  t.equal(results.length, acks.length, "every job settled");
  t.ok(peak() <= 4, `at most 4 batches at once (peak ${peak()})`);
  t.ok(batches.some((b) => b.items.length > 1), "queued items were batched");
  t.ok(batches.some((b) => new Set(b.items.map((i) => i.group)).size > 1), "batches span several groups");
  t.same(overlaps, [], "a group is never in two batches (or a batch and a solo job) at once");
  // Order: every group's items and solo jobs were started in submission order.
  const order = (g: string) => {
    const batchStarts = batches.flatMap((b, bi) => b.items.filter((i) => i.group === g).map((i) => ({ n: i.n, at: bi })));
    return batchStarts.map((x) => x.n);
  };
  for (const g of groups) {
    const ns = order(g);
    t.same(ns, [...ns].sort((a, b) => a - b), `${g}: batched items in submission order`);
  }
});

t.test("a group's batch waits for its previous batch; other groups do not", async (t) => {
  const { s, batches } = harness({ concurrency: 4 });
  const a1 = s.submit("a", { group: "a", n: 1 });
  await tick();
  t.equal(batches.length, 1, "a:1 is written at once, alone");
  const a2 = s.submit("a", { group: "a", n: 2 });
  const a3 = s.submit("a", { group: "a", n: 3 });
  const b1 = s.submit("b", { group: "b", n: 1 });
  await tick();
  t.equal(batches.length, 2, "b starts beside a's batch");
  t.same(batches[1]!.items, [{ group: "b", n: 1 }], "a:2 and a:3 wait for a:1");
  batches[1]!.release();
  t.equal(await b1, "b:1", "b is acknowledged while a:1 still runs");
  batches[0]!.release();
  t.equal(await a1, "a:1");
  await tick();
  t.same(batches[2]!.items, [{ group: "a", n: 2 }, { group: "a", n: 3 }], "then a:2 and a:3 together, in order");
  batches[2]!.release();
  t.same(await Promise.all([a2, a3]), ["a:2", "a:3"]);
});

t.test("a solo job runs alone and holds up only its own group", async (t) => {
  const { s, batches } = harness({ concurrency: 4 });
  let releaseSolo!: () => void;
  const solo = s.solo("a", () => new Promise<string>((r) => (releaseSolo = () => r("updated"))));
  const a2 = s.submit("a", { group: "a", n: 2 });
  const b1 = s.submit("b", { group: "b", n: 1 });
  await tick();
  t.same(batches.map((b) => b.items), [[{ group: "b", n: 1 }]], "b is written; a:2 waits behind a's update");
  batches[0]!.release();
  t.equal(await b1, "b:1");
  releaseSolo();
  t.equal(await solo, "updated");
  await tick();
  t.same(batches[1]!.items, [{ group: "a", n: 2 }], "a:2 after the update");
  batches[1]!.release();
  t.equal(await a2, "a:2");
});

t.test("at most `concurrency` batches in flight; the backlog is written in one batch", async (t) => {
  const { s, batches, running } = harness({ concurrency: 2 });
  const acks = ["a", "b", "c", "d", "e"].map((g) => s.submit(g, { group: g, n: 1 }));
  await tick();
  t.equal(running(), 2, "two batches run");
  t.equal(s.queued, 3, "three items wait");
  batches[0]!.release();
  await tick();
  t.same(batches[2]!.items.map((i) => i.group), ["c", "d", "e"], "the waiting groups go together, first come first served");
  batches[1]!.release();
  batches[2]!.release();
  t.same(await Promise.all(acks), ["a:1", "b:1", "c:1", "d:1", "e:1"]);
});

t.test("batches stop growing at maxBatch items or maxBatchWeight", async (t) => {
  const { s, batches } = harness({ concurrency: 1, maxBatch: 3, maxBatchWeight: 10 });
  const first = s.submit("x", { group: "x", n: 0 });
  await tick();
  const acks = [1, 2, 3, 4].map((n) => s.submit(`g${n}`, { group: `g${n}`, n }));
  const heavy = [s.submit("h", { group: "h", n: 1, weight: 9 }), s.submit("h", { group: "h", n: 2, weight: 9 })];
  batches[0]!.release();
  await first;
  for (let i = 1; i < 5; i++) {
    await tick();
    batches[i]?.release();
  }
  await Promise.all([...acks, ...heavy]);
  t.same(batches.slice(1).map((b) => b.items.length), [3, 2, 1], "3 items (maxBatch); then g4 and h:1, which bring it to 10 (maxBatchWeight); then h:2");
});

t.test("a failed batch fails its items only; the group's later items still run", async (t) => {
  const { s, batches } = harness({ concurrency: 2 });
  const a1 = s.submit("a", { group: "a", n: 1 });
  await tick();
  const a2 = s.submit("a", { group: "a", n: 2 });
  batches[0]!.fail(new Error("connection lost"));
  await t.rejects(a1, /connection lost/);
  await tick();
  batches[1]!.release();
  t.equal(await a2, "a:2");
});

t.test("a job that waited past maxWaitMs is refused unrun with unavailable", async (t) => {
  let now = 0;
  const { s, batches } = harness({ concurrency: 1, maxWaitMs: 100, now: () => now });
  const a1 = s.submit("a", { group: "a", n: 1 });
  await tick();
  const b1 = s.submit("b", { group: "b", n: 1 });
  const b2 = s.submit("b", { group: "b", n: 2 });
  now = 150; // a:1 hangs past b's budget
  const c1 = s.submit("c", { group: "c", n: 1 });
  batches[0]!.release();
  await a1;
  await t.rejects(b1, { code: "unavailable" });
  await t.rejects(b2, { code: "unavailable" });
  await tick();
  t.same(batches[1]!.items, [{ group: "c", n: 1 }], "only the fresh job is written");
  batches[1]!.release();
  t.equal(await c1, "c:1");
});

t.test("the default: 4 batches in flight (WRITE_CONCURRENCY)", async (t) => {
  t.equal(loadConfig({}).WRITE_CONCURRENCY, 4);
  const { s, running } = harness({ concurrency: loadConfig({}).WRITE_CONCURRENCY });
  for (let i = 0; i < 10; i++) void s.submit(`g${i}`, { group: `g${i}`, n: 1 });
  await tick();
  t.equal(running(), 4);
  t.equal(s.inFlight, 4);
});

t.test("with a batch in flight, another starts only once fillBatch items wait", async (t) => {
  const { s, batches, running } = harness({ concurrency: 4, fillBatch: 3, lingerMs: 60_000 });
  const acks = [s.submit("a", { group: "a", n: 1 })];
  await tick();
  t.equal(running(), 1, "the first item is written at once, alone");
  acks.push(s.submit("b", { group: "b", n: 1 }), s.submit("c", { group: "c", n: 1 }));
  await tick();
  t.equal(running(), 1, "two waiting items are not worth a second batch");
  acks.push(s.submit("d", { group: "d", n: 1 }));
  await tick();
  t.equal(running(), 2, "the third waiting item starts one");
  t.same(batches[1]!.items.map((i) => i.group), ["b", "c", "d"], "the waiting groups go together");
  batches.forEach((b) => b.release());
  t.same(await Promise.all(acks), ["a:1", "b:1", "c:1", "d:1"]);
});

/**
 * The scheduler's clock and timers, mocked: what starts "at once" and what waits for lingerMs or
 * stallMs is then decided by the clock, not by how long a loop turn takes on a busy machine.
 */
function fakeClock(t: Test) {
  let at = 1_000;
  mock.timers.enable({ apis: ["setTimeout"] });
  t.teardown(() => mock.timers.reset());
  return {
    now: () => at,
    /** Moves the clock on by `ms`, runs the timers due, and lets what they started settle. */
    advance: async (ms: number) => {
      at += ms;
      mock.timers.tick(ms);
      await tick();
    },
  };
}

t.test("with a batch in flight, a waiting group starts its own batch once it waited stallMs", async (t) => {
  const clock = fakeClock(t);
  const { s, batches, running } = harness({ concurrency: 4, fillBatch: 1_000, lingerMs: 1, stallMs: 30, now: clock.now });
  const a = s.submit("a", { group: "a", n: 1 }); // hangs: a lock wait, say
  await tick();
  t.equal(running(), 1);
  const b = s.submit("b", { group: "b", n: 1 });
  await tick();
  t.equal(running(), 1, "b waits: one item is not worth a second batch yet");
  await clock.advance(29);
  t.equal(running(), 1, "still, 29 ms later");
  await clock.advance(1);
  t.equal(running(), 2, "b's batch started beside the hanging one once b waited stallMs");
  batches[1]!.release();
  t.equal(await b, "b:1", "b is acknowledged while a still hangs");
  batches[0]!.release();
  t.equal(await a, "a:1");
});

t.test("under load batches start at most every lingerMs; a lone write goes at once", async (t) => {
  const clock = fakeClock(t);
  const { s, batches, running } = harness({ concurrency: 4, fillBatch: 1_000, lingerMs: 40, now: clock.now });
  const acks = [s.submit("a", { group: "a", n: 1 })];
  await tick();
  t.equal(running(), 1, "nothing in flight, none started lately: a goes at once");
  for (const g of ["b", "c"]) acks.push(s.submit(g, { group: g, n: 1 }));
  await clock.advance(10);
  batches[0]!.release();
  await acks[0];
  await tick();
  t.equal(batches.length, 1, "a's batch is over, but the next waits for the linger");
  await clock.advance(29);
  t.equal(batches.length, 1, "39 ms after a's");
  await clock.advance(1);
  t.same(batches[1]?.items.map((i) => i.group), ["b", "c"], "b and c together in the next batch, one linger after a's");
  batches[1]!.release();
  await acks[2];
  await clock.advance(40);
  acks.push(s.submit("d", { group: "d", n: 1 }));
  await tick();
  t.equal(batches.length, 3, "after a quiet linger, a lone write goes at once again");
  batches[2]!.release();
  t.same(await Promise.all(acks), ["a:1", "b:1", "c:1", "d:1"]);
  t.equal(s.queued, 0);
});

t.test("a batch that ends early brings the next one forward: the stall wait armed meanwhile does not hold it", async (t) => {
  const clock = fakeClock(t);
  const { s, batches } = harness({ concurrency: 4, fillBatch: 1_000, lingerMs: 20, stallMs: 2_000, now: clock.now });
  const a = s.submit("a", { group: "a", n: 1 });
  await tick();
  const b = s.submit("b", { group: "b", n: 1 }); // waits: a is in flight, a wake-up is armed for its stall
  await clock.advance(5);
  batches[0]!.release();
  await a;
  await tick();
  t.equal(batches.length, 1, "not at once: a's batch started 5 ms ago");
  await clock.advance(15);
  t.equal(batches.length, 2, "b started one linger after a, not after the stall wait");
  batches[1]!.release();
  t.equal(await b, "b:1");
});

t.test("the node's defaults: batches at most every 5 ms; a second one only for a group kept waiting 50 ms or a full batch", async (t) => {
  const { batchingFor } = await import("../../src/store/database.ts");
  const { loadConfig } = await import("../../src/config/env.ts");
  t.equal(loadConfig({}).WRITE_BATCH_LINGER_MS, 5, "WRITE_BATCH_LINGER_MS defaults to 5");
  t.match(batchingFor({ dataDir: "x" }), { concurrency: 4, maxBatch: 500, fillBatch: 500, lingerMs: 5, stallMs: 50 });
  t.match(batchingFor({ dataDir: "x", writeBatchLingerMs: 0 }), { lingerMs: 0 }, "0: a batch starts at once, up to the concurrency");
});
