// Fault injection, the gentle kind: SIGTERM on a node whose clients are sending (a rolling
// deploy). No acknowledged write is lost, the clients are closed with 1001, the process exits 0,
// and the clients, reconnecting to another node with `?since=` and resending what was not
// acknowledged with the same request_id, end up with the full gap-free sequence.
import t, { type Test } from "tap";
import { spawnNode, type NodeProcess } from "../helpers/node.ts";
import { uniqueGroup, within } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";
import { assertSeqs, range, Recorder, RetryingSender } from "../helpers/delivery.ts";

await requireRedis();
const url = await freshDatabase(t);
const db = await sql(t, url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// B lives through the whole file; each test drains its own A.
const b = await spawnNode(t, { DATABASE_URL: url, REDIS_URL });

async function drainUnderTraffic(t: Test, drainDelayMs: number) {
  const a: NodeProcess = await spawnNode(t, { DATABASE_URL: url, REDIS_URL, DRAIN_DELAY_MS: String(drainDelayMs) });
  const g = uniqueGroup("drain");
  const listener = new Recorder("listener-b", "listener");
  await listener.connect(t, b.port, g);
  const aListener = new Recorder("listener-a", "listener-a");
  await aListener.connect(t, a.port, g);

  const seams: { name: string; since: number; replayMs: number; replayed: number }[] = [];
  const senders = [0, 1, 2, 3].map((i) => new Recorder(`s${i}`, `s${i}`));
  for (const s of senders) await s.connect(t, a.port, g);
  const loops = senders.map(
    (rec) =>
      new RetryingSender(rec, {
        answerMs: 15_000,
        reconnect: async (r) => {
          const since = r.lastSeq;
          const conn = r.conns;
          const t0 = Date.now();
          await r.connect(t, b.port, g, since);
          const ok = await r.until(() => r.resumed.some((x) => x.conn === conn), 15_000);
          seams.push({ name: r.name, since, replayMs: ok ? r.resumed.find((x) => x.conn === conn)!.at - t0 : -1, replayed: r.events.filter((e) => e.conn === conn).length });
        },
      }),
  );
  for (const l of loops) l.start();
  await sleep(1_000);

  const ackedBefore = loops.reduce((n, l) => n + l.acked().length, 0);
  t.ok(ackedBefore > 0, `${ackedBefore} creates acknowledged by A before the signal`);
  const signalAt = Date.now();
  a.child.kill("SIGTERM");
  const code = await within(a.exited, 12_000 + drainDelayMs, "A's exit");
  t.equal(code, 0, `A exits 0 (${Date.now() - signalAt} ms after SIGTERM)`);
  for (const r of [...senders, aListener]) {
    const first = await within(
      r.until(() => r.closes.some((c) => c.conn === 0), 1_000).then(() => r.closes.find((c) => c.conn === 0)),
      2_000,
      `${r.name}'s close`,
    );
    t.equal(first?.code, 1001, `${r.name}: the connection to A is closed with 1001 going away`);
  }
  const reconnected = await Promise.all(senders.map((s) => s.until(() => s.conns >= 2 && s.open && s.resumed.length >= 1, 15_000)));
  t.ok(reconnected.every(Boolean), "every sender reconnected to B and resumed");
  await sleep(1_000);
  await Promise.all(loops.map((l) => l.stop()));

  // --- the verdict ---
  const events = (await db.query("SELECT seq, message_id FROM group_events WHERE group_name = $1 ORDER BY seq", [g])).rows as { seq: number; message_id: string }[];
  const N = events.length;
  t.same(events.map((e) => e.seq), range(N), `the database holds seq 1..${N}`);
  const attempts = loops.flatMap((l) => [...l.attempts.values()]);
  const acks = attempts.flatMap((x) => x.answers.filter((a) => typeof a !== "string" && a.operation === "ack")) as { request_id: string; message_id: string; seq: number }[];
  const stored = new Map(events.map((e) => [e.message_id, e.seq]));
  t.same(acks.filter((x) => stored.get(x.message_id) !== x.seq), [], `every acknowledged create (${acks.length}) is stored with its seq: no acknowledged write lost`);
  t.same(attempts.filter((x) => x.ack === null).map((x) => ({ rid: x.requestId, answers: x.answers })), [], "every create was eventually acknowledged");
  const final = attempts.map((x) => x.ack!).filter(Boolean);
  t.same(final.map((x) => x.seq).sort((p, q) => p! - q!), range(N), "the acks carry seq 1..N: nothing was stored without its sender learning of it");
  const dup = (await db.query("SELECT user_id, request_id, count(*)::int AS n FROM messages WHERE group_name = $1 GROUP BY 1, 2 HAVING count(*) > 1", [g])).rows;
  t.same(dup, [], "no request_id stored twice");

  const refusedBare = senders.flatMap((s) => s.bareErrors.map((e) => ({ sender: s.name, ...e })));
  t.same(refusedBare, [], "a frame refused during the shutdown is answered with its request_id (contract: echoed in the error for that frame)");
  const answersPerTry = attempts.filter((x) => x.answers.some((a) => a === "timeout"));
  t.same(answersPerTry.map((x) => x.requestId), [], "no frame went unanswered until a timeout");

  const all = [...senders, listener];
  await Promise.all(all.map((r) => r.until(() => r.seqs.length >= N, 10_000)));
  await sleep(500);
  for (const r of all) assertSeqs(t, r, N);
  for (const r of all) {
    const counts = new Map<string, number>();
    for (const e of r.events) if (e.operation === "create") counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
    t.same(final.filter((x) => counts.get(x.message_id!) !== 1).map((x) => x.request_id), [], `${r.name} saw every acknowledged message exactly once`);
  }
  // The listener on A saw a gap-free prefix before its socket was closed.
  t.same(aListener.seqs, range(aListener.seqs.length), `the listener on A saw seq 1..${aListener.seqs.length} before the close`);
  const retried = attempts.filter((x) => new Set(x.conns).size > 1);
  t.comment(
    `drain ${drainDelayMs} ms: A exited after SIGTERM; ${retried.length} creates resent on B: ${JSON.stringify(retried.map((x) => ({ rid: x.requestId, answers: x.answers.map((a) => (typeof a === "string" ? a : a.operation === "error" ? a.code : a.operation)) })))}; bare refusals: ${refusedBare.length}`,
  );
  t.comment(`seams: ${JSON.stringify(seams)}; worst replay ${Math.max(...seams.map((s) => s.replayMs))} ms`);
  for (const r of all) r.client?.ws.terminate();
}

t.test("SIGTERM with no drain delay while four clients send", (t) => drainUnderTraffic(t, 0));
t.test("SIGTERM with a drain delay: the node keeps serving, then closes with 1001", (t) => drainUnderTraffic(t, 700));
