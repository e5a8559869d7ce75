// Coalesced writes on their own (no database): one write in flight; the first call goes at once,
// alone; calls made meanwhile go together in the next write; each caller learns its own write's
// outcome; past the bound a call is refused at once.
import t from "tap";
import { Coalescer } from "../../src/store/coalesce.ts";

function harness(maxItems?: number, maxQueued?: number) {
  const writes: { items: number[]; done: (err?: Error) => void }[] = [];
  let inFlight = 0;
  let peak = 0;
  const c = new Coalescer<number>(
    (items) =>
      new Promise<void>((resolve, reject) => {
        peak = Math.max(peak, ++inFlight);
        writes.push({ items, done: (err) => (inFlight--, err ? reject(err) : resolve()) });
      }),
    maxItems,
    maxQueued,
  );
  return { c, writes, peak: () => peak };
}
const tick = () => new Promise((r) => setImmediate(r));

t.test("the first call is written at once; calls made meanwhile go together, one write at a time", async (t) => {
  const { c, writes, peak } = harness();
  const first = c.add(1);
  t.same(writes.map((w) => w.items), [[1]], "1 is written at once, alone");
  const later = [2, 3, 4].map((n) => c.add(n));
  await tick();
  t.equal(writes.length, 1, "2, 3 and 4 wait for the write in flight");
  t.equal(c.waiting, 3);
  writes[0]!.done();
  await first;
  await tick();
  t.same(writes[1]!.items, [2, 3, 4], "then together");
  writes[1]!.done();
  await Promise.all(later);
  t.equal(peak(), 1, "never two writes in flight");
  t.equal(c.waiting, 0);
});

t.test("a failed write fails its own callers only", async (t) => {
  const { c, writes } = harness();
  const a = c.add(1);
  const b = c.add(2);
  writes[0]!.done(new Error("database down"));
  await t.rejects(a, /database down/);
  await tick();
  writes[1]!.done();
  await b;
  t.pass("the next write's caller succeeds");
});

t.test("a write carries at most maxItems; past maxQueued a call is refused at once", async (t) => {
  const { c, writes } = harness(2, 3);
  const calls = [c.add(1), c.add(2), c.add(3), c.add(4)];
  await t.rejects(c.add(5), /3 writes already waiting/, "the fifth call is refused: three wait");
  writes[0]!.done();
  await tick();
  t.same(writes[1]!.items, [2, 3], "two per write");
  writes[1]!.done();
  await tick();
  t.same(writes[2]!.items, [4]);
  writes[2]!.done();
  await Promise.all(calls);
});

t.test("at the defaults: 1,000 items per write, and the 100,001st waiting call is refused", async (t) => {
  const { c, writes } = harness();
  const first = c.add(0); // in flight, so the rest wait
  const waiting = Array.from({ length: 100_000 }, (_, i) => c.add(i + 1));
  t.equal(c.waiting, 100_000);
  await t.rejects(c.add(-1), /100000 writes already waiting/);
  writes[0]!.done();
  await first;
  await tick();
  t.equal(writes[1]!.items.length, 1_000, "the next write carries 1,000");
  for (let i = 1; i < writes.length || c.waiting > 0; i++) {
    while (writes.length <= i) await tick();
    writes[i]!.done();
  }
  await Promise.all(waiting);
  t.equal(writes.length, 101, "one alone, then 100 writes of 1,000");
});

t.test("a connect storm's memberships: 2,000 joins at once (with repeats) all land, in few statements", async (t) => {
  const { openDatabase } = await import("../../src/store/database.ts");
  const { PrismaReadState } = await import("../../src/store/prisma-read-state.ts");
  const { freshDatabase, sql } = await import("../helpers/services.ts");
  const url = await freshDatabase(t);
  // A pool of 2: one statement each would queue 2,000 deep behind it.
  const db = await openDatabase({ databaseUrl: url, dataDir: "unused", poolSize: 2 });
  t.teardown(() => db.store.close());
  const reads = new PrismaReadState(db.prisma);
  let statements = 0;
  const raw = db.prisma.$executeRawUnsafe.bind(db.prisma);
  (db.prisma as { $executeRawUnsafe: typeof raw }).$executeRawUnsafe = ((q: string, ...v: unknown[]) => (statements++, raw(q, ...v))) as typeof raw;
  const joins = Array.from({ length: 2_000 }, (_, i) => reads.join(`g${i % 50}`, `u${i % 1_500}`));
  await Promise.all(joins);
  const admin = await sql(t, url);
  t.same((await admin.query(`SELECT count(*)::int AS n FROM memberships`)).rows, [{ n: 1_500 }], "every distinct (user, group) is a member once");
  t.ok(statements <= 3, `${statements} statements for 2,000 joins`);
});
