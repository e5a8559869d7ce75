// A long Redis outage under a steady stream of creates: the publishing node's queue of events
// waiting for Redis stays within MAX_BUS_QUEUE_BYTES (here 64 KiB; the default is checked in
// test/bus/publish-budget.test.ts), the excess is dropped and counted, every create is still
// acknowledged (it is stored), and once Redis is back every client on either node gets exactly
// the stored events 1..N in seq order: what was dropped is read back from the database. Both for
// a Redis that is gone (killed: the connection drops) and one that stalls (SIGSTOP: the
// connection stays up, nothing is read or answered). The group is quiet after the outage: its
// newest event still reaches every node (it is the one kept, not the one dropped).
import { execFileSync } from "node:child_process";
import t, { type Test } from "tap";
import { startInProcess } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup } from "../helpers/probe.ts";
import { privateRedis } from "../helpers/redis-server.ts";
import { freshDatabase } from "../helpers/services.ts";
import { assertSeqs, Recorder } from "../helpers/delivery.ts";

const BUDGET = 64 * 1024;
const redis = await privateRedis(t);
const url = await freshDatabase(t);
const env = { DATABASE_URL: url, REDIS_URL: redis.url, MAX_BUS_QUEUE_BYTES: String(BUDGET) };
const a = await startInProcess(t, env);
const b = await startInProcess(t, env);

/** The redis-server's pid, for stalling it with SIGSTOP. */
const redisPid = () => Number(/process_id:(\d+)/.exec(execFileSync("redis-cli", ["-p", String(redis.port), "INFO", "server"], { encoding: "utf8" }))![1]);

async function outage(t: Test, fault: { begin: () => Promise<void>; end: () => Promise<void> }, bound: number) {
  const g = uniqueGroup("bus-budget");
  const alice = new Recorder("alice", "alice");
  const onA = new Recorder("onA", "carol");
  const onB = new Recorder("onB", "bob");
  await alice.connect(t, a.port, g);
  await onA.connect(t, a.port, g);
  await onB.connect(t, b.port, g);
  const body = "y".repeat(2_000); // each event ~2.3 KB: the budget holds ~28 of them
  let n = 0;
  const create = async () => {
    const rid = `c${++n}`;
    const answer = await alice.ask({ operation: "create", type: "text", body: `${n} ${body}` }, rid, 10_000);
    t.match(answer, { operation: "ack", seq: n }, `${rid} acknowledged`);
  };
  for (let i = 0; i < 5; i++) await create();
  t.ok(await onB.until(() => onB.seqs.length === 5, 5_000), "delivered across nodes before the outage");

  const droppedBefore = (await metric(a.port, "chat_bus_publishes_dropped_total")) ?? 0;
  await fault.begin();
  let maxQueued = 0;
  for (let i = 0; i < 120; i++) {
    await create();
    if (i % 10 === 9) maxQueued = Math.max(maxQueued, (await metric(a.port, "chat_bus_queue_bytes")) ?? -1);
  }
  const dropped = ((await metric(a.port, "chat_bus_publishes_dropped_total")) ?? 0) - droppedBefore;
  t.ok(maxQueued > BUDGET / 2 && maxQueued <= bound, `node A held at most its bound during the outage (${maxQueued} of ${bound} bytes)`);
  t.ok(dropped >= 80, `the excess was dropped and counted (${dropped} publishes)`);

  // Nothing is sent after the outage: the group is quiet, yet its newest event must reach everyone.
  await fault.end();
  const total = n;
  for (const r of [alice, onA, onB]) t.ok(await r.until(() => r.seqs.length >= total, 20_000), `${r.name} caught up to ${total}`);
  await new Promise((r) => setTimeout(r, 300));
  for (const r of [alice, onA, onB]) assertSeqs(t, r, total);
  // The subscriber's reconnect repairs the clients from the database; the publisher reconnects on
  // its own backoff (up to 2 s) and only then flushes what it held: wait for that, with a deadline.
  let queued: number | null = null;
  const emptied = await eventually(async () => (queued = await metric(a.port, "chat_bus_queue_bytes")) === 0, 10_000, 100);
  t.ok(emptied, `the queue is empty again once the publisher reconnected (${queued} bytes left)`);
  for (let i = 0; i < 3; i++) await create();
  t.ok(await onB.until(() => onB.seqs.length === n, 5_000), "live delivery across nodes works again");
  assertSeqs(t, onB, n);
}

t.test("Redis killed while creates go on: the publish queue stays within its budget, and delivery resumes complete", (t) =>
  outage(t, { begin: () => redis.stop("SIGKILL"), end: () => redis.start() }, BUDGET));

t.test("Redis stalled (SIGSTOP) while creates go on: unacknowledged publishes count against the budget too", async (t) => {
  const pid = redisPid();
  t.teardown(() => {
    try {
      process.kill(pid, "SIGCONT");
    } catch {
      // already gone
    }
  });
  // Everything held is in flight here, so each group's newest dropped publish is kept aside: up to a quarter more.
  await outage(t, { begin: async () => void process.kill(pid, "SIGSTOP"), end: async () => void process.kill(pid, "SIGCONT") }, BUDGET * 1.25);
});
