// Fault injection: the Redis of the bus crashes and comes back, empty, on the same port while
// senders on two nodes keep creating messages. Creates keep committing and acknowledging during
// the outage (publishing is queued), readiness is 503 while Redis is gone and 200 again once the
// nodes reconnected and resubscribed by themselves, and every client on either node ends up with
// exactly the stored events 1..N in seq order: the events of the outage arrive late (live, by
// gap repair or by the catch-up after the reconnect) but none is lost, repeated or reordered.
import t from "tap";
import { Redis } from "ioredis";
import { spawnNode } from "../helpers/node.ts";
import { eventually, httpGet, metric, uniqueGroup } from "../helpers/probe.ts";
import { privateRedis } from "../helpers/redis-server.ts";
import { freshDatabase, sql } from "../helpers/services.ts";
import { assertSeqs, range, Recorder, repeats, Sender, sendersAndListeners } from "../helpers/delivery.ts";

const redis = await privateRedis(t);
const url = await freshDatabase(t);
const [a, b] = await Promise.all([0, 1].map(() => spawnNode(t, { DATABASE_URL: url, REDIS_URL: redis.url })));
const nodes = [a!, b!];
const db = await sql(t, url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * /readyz's status and what its body reports about Redis. Readiness does not depend on Redis (a
 * blip must not take every node out of the load balancer at once): it stays 200 while the body
 * and chat_redis_up report the outage.
 */
async function readyz(port: number): Promise<string> {
  const r = await httpGet(port, "/readyz");
  if (!("status" in r)) return r.error;
  const redisUp = (JSON.parse(r.body) as { dependencies?: { redis?: { up?: boolean } } }).dependencies?.redis?.up;
  return `${r.status} redis ${redisUp ? "up" : "down"}`;
}

for (const how of ["SIGKILL", "shutdown"] as const) {
  t.test(`Redis ${how === "SIGKILL" ? "killed (SIGKILL)" : "stopped (SHUTDOWN NOSAVE)"} and restarted under traffic: every client gets seq 1..N`, async (t) => {
    const g = uniqueGroup(`redis-${how}`);
    // Two senders and one listener per node.
    const senders: Recorder[] = [];
    const listeners: Recorder[] = [];
    for (const [i, n] of nodes.entries()) {
      for (const k of [0, 1]) {
        const r = new Recorder(`s${i}${k}`, `s${i}${k}`);
        await r.connect(t, n.port, g);
        senders.push(r);
      }
      const l = new Recorder(`listener${i}`, `l${i}`);
      await l.connect(t, n.port, g);
      listeners.push(l);
    }
    const all = [...senders, ...listeners];
    for (const n of nodes) t.ok(await eventually(async () => (await readyz(n.port)) === "200 redis up", 10_000, 100), "ready before the fault");

    const loops = senders.map((r) => new Sender(r, { answerMs: 15_000, pauseMs: 5 }).start());
    await sleep(1_000);
    const ackedBefore = loops.reduce((n, l) => n + l.acks().length, 0);
    t.ok(ackedBefore > 0, `${ackedBefore} creates acknowledged before the fault`);

    // --- the fault ---
    const killedAt = Date.now();
    await redis.stop(how);
    t.notOk(redis.running(), "redis-server is down");
    const notReady = await Promise.all(nodes.map((n) => eventually(async () => (await readyz(n.port)) === "200 redis down", 5_000, 50)));
    t.same(notReady, [true, true], "/readyz reports Redis down on both nodes and stays 200 (both stay in the load balancer)");
    t.equal(await metric(nodes[0]!.port, "chat_redis_up"), 0, "chat_redis_up is 0");
    // Keep the outage for ~1.5 s in all, polling readiness: it must stay ready and report it.
    const during = new Set<string>();
    for (let i = 0; i < 5 || Date.now() - killedAt < 1_500; i++) {
      for (const n of nodes) during.add(await readyz(n.port));
      await sleep(100);
    }
    t.same([...during], ["200 redis down"], "/readyz stays 200, reporting Redis down, during the outage");
    const ackedAtRestart = loops.flatMap((l) => l.acks());
    const outageAcks = ackedAtRestart.filter((o) => o.at > killedAt);
    t.ok(outageAcks.length > 0, `creates still commit and acknowledge while Redis is down (${outageAcks.length} acked during the outage)`);
    const maxSeqAtRestart = Math.max(...ackedAtRestart.map((o) => o.answer.seq!));

    await redis.start();
    const restartedAt = Date.now();
    const readyAgain = await Promise.all(
      nodes.map(async (n) => ((await eventually(async () => (await readyz(n.port)) === "200 redis up", 15_000, 50)) ? Date.now() - restartedAt : -1)),
    );
    t.ok(readyAgain.every((ms) => ms >= 0), `/readyz reports Redis up again on both nodes without a restart (after ${readyAgain.join(", ")} ms)`);

    // Both nodes resubscribed to the group's channel on the new Redis by themselves.
    const probe = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    t.teardown(() => void probe.disconnect());
    const resubscribed = await eventually(async () => {
      const [, count] = (await probe.pubsub("NUMSUB", `chat:${g}`)) as [string, number];
      return Number(count) === 2;
    }, 10_000, 50);
    t.ok(resubscribed, "both nodes are subscribed to the group's channel again");
    const caughtUp = await Promise.all(all.map((r) => r.until(() => r.seqs.includes(maxSeqAtRestart), 20_000)));
    const caughtUpMs = Date.now() - restartedAt;
    t.ok(caughtUp.every(Boolean), `every client received the events stored up to the restart (seq ${maxSeqAtRestart}) ${caughtUpMs} ms after it`);
    t.comment(`redis ${how}: outage ${restartedAt - killedAt} ms, ${outageAcks.length} acks during it; redis up in readyz after ${readyAgain.join("/")} ms; all clients caught up ${caughtUpMs} ms after the restart`);

    // Live traffic flows again through the new Redis.
    await sleep(1_000);
    await Promise.all(loops.map((l) => l.stop()));

    // --- the verdict ---
    const outcomes = loops.flatMap((l) => l.outcomes);
    t.same(outcomes.filter((o) => typeof o.answer === "string" || o.answer.operation !== "ack"), [], "every create was acknowledged (no error, no timeout)");
    const acks = loops.flatMap((l) => l.acks());
    const N = acks.length;
    t.same(acks.map((o) => o.answer.seq).sort((x, y) => x! - y!), range(N), `the acks carry seq 1..${N}, each once`);
    const arrived = await Promise.all(all.map((r) => r.until(() => r.seqs.length >= N, 15_000)));
    t.ok(arrived.every(Boolean), "every client received N stored events");
    await sleep(500); // a late duplicate would show up here
    for (const r of all) assertSeqs(t, r, N);
    const ids = new Map(acks.map((o) => [o.answer.seq!, o.answer.message_id!]));
    for (const r of all) {
      const wrong = r.events.filter((e) => e.operation !== "create" || ids.get(e.seq) !== e.id);
      t.same(wrong, [], `${r.name}: each event is the create its ack announced`);
    }
    const rows = (await db.query("SELECT seq, id FROM messages WHERE group_name = $1 ORDER BY seq", [g])).rows as { seq: number; id: string }[];
    t.same(rows.map((r) => r.seq), range(N), "the database holds seq 1..N");
    t.same(rows.filter((r) => ids.get(r.seq) !== r.id), [], "each stored message is the one acknowledged with its seq");
    t.same(repeats(rows.map((r) => r.id)), [], "no message stored twice");
    for (const n of nodes) {
      t.ok(n.logs.some((l) => l.msg === "redis reconnected; catching up on missed events" && (l.time as number) >= restartedAt - 50), "the node logged its reconnect and catch-up");
    }
    for (const r of all) r.client?.ws.terminate();
  });
}

t.test("events stored only while Redis is down, and nothing after: the reconnect alone delivers them to every client", async (t) => {
  const g = uniqueGroup("redis-tail");
  const { senders, listeners, all } = await sendersAndListeners(t, nodes.map((n) => n.port), g, "listener");
  const before = senders.map((r) => new Sender(r, { answerMs: 15_000 }).start());
  await sleep(300);
  await Promise.all(before.map((l) => l.stop()));
  const n0 = before.reduce((n, l) => n + l.acks().length, 0);
  t.ok(await Promise.all(all.map((r) => r.until(() => r.seqs.length >= n0, 5_000))).then((xs) => xs.every(Boolean)), `${n0} events delivered live before the fault`);

  await redis.stop("SIGKILL");
  t.ok(await eventually(async () => (await readyz(nodes[0]!.port)) === "200 redis down" && (await readyz(nodes[1]!.port)) === "200 redis down", 5_000, 50), "both nodes report Redis down, and stay ready");
  const during = senders.map((r) => new Sender(r, { answerMs: 15_000 }).start());
  await sleep(800);
  await Promise.all(during.map((l) => l.stop()));
  const loops = [...before, ...during];
  t.same(during.flatMap((l) => l.outcomes).filter((o) => typeof o.answer === "string" || o.answer.operation !== "ack"), [], "every create during the outage was acknowledged");
  const acks = loops.flatMap((l) => l.acks());
  const N = acks.length;
  t.ok(N > n0, `${N - n0} creates stored while Redis was down`);
  t.same(all.map((r) => r.seqs.length), all.map(() => n0), "nothing of them reached a client while Redis was down");

  await redis.start();
  const restartedAt = Date.now();
  const caughtUp = await Promise.all(all.map((r) => r.until(() => r.seqs.length >= N, 20_000)));
  const ms = Date.now() - restartedAt;
  t.ok(caughtUp.every(Boolean), `every client got the ${N - n0} events of the outage without further traffic (${ms} ms after the restart)`);
  t.comment(`redis tail: ${N - n0} events stored during the outage reached all clients ${ms} ms after the restart`);
  await sleep(500);
  t.same(acks.map((o) => o.answer.seq).sort((x, y) => x! - y!), range(N), `the acks carry seq 1..${N}`);
  for (const r of all) assertSeqs(t, r, N);
  t.ok(await eventually(async () => (await readyz(nodes[0]!.port)) === "200 redis up" && (await readyz(nodes[1]!.port)) === "200 redis up", 10_000, 50), "both nodes report Redis up again");
  for (const r of all) r.client?.ws.terminate();
});
