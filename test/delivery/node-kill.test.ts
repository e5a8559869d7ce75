// Fault injection: a node dies (SIGKILL) under clients that are sending. They reconnect to the
// other nodes with `?since=<last seq they saw>` and resend every create that was not acknowledged
// with the SAME request_id. In the end every client has seen the stored events 1..N exactly once
// and in order, across the replay seam; each acknowledged message once; and the database holds
// one message per request.
import t, { type Test } from "tap";
import { spawnNode, type NodeProcess } from "../helpers/node.ts";
import { uniqueGroup, within } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";
import { assertSeqs, range, Recorder, repeats, RetryingSender, type StoredEvent } from "../helpers/delivery.ts";

await requireRedis();
const url = await freshDatabase(t);
const db = await sql(t, url);
const redisUrl = new URL(REDIS_URL);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// B and C live through the whole file; each test kills its own A.
const [b, c] = await Promise.all([0, 1].map(() => spawnNode(t, { DATABASE_URL: url, REDIS_URL })));
const survivors = [b!, c!];

interface Seam {
  name: string;
  since: number;
  /** ms from the reconnect to the `resumed` marker. */
  replayMs: number;
  resumedSeq: number | null;
  /** Stored events the replay delivered (between the open and `resumed`). */
  replayed: number;
}

async function killUnderTraffic(t: Test, a: NodeProcess, opts: { beforeKill?: (t: Test) => Promise<void>; expectCommittedUnacked?: boolean } = {}) {
  const g = uniqueGroup("node-kill");
  const listeners = survivors.map((n, i) => new Recorder(`listener-${"bc"[i]}`, `listener${i}`));
  for (const [i, l] of listeners.entries()) await l.connect(t, survivors[i]!.port, g);

  const seams: Seam[] = [];
  const idempotency: { name: string; requestId: string; original: unknown; retried: unknown }[] = [];
  const reconnect = async (rec: Recorder, target: NodeProcess) => {
    const since = rec.lastSeq;
    const conn = rec.conns;
    const t0 = Date.now();
    await rec.connect(t, target.port, g, since);
    const ok = await rec.until(() => rec.resumed.some((r) => r.conn === conn), 15_000);
    const marker = rec.resumed.find((r) => r.conn === conn);
    seams.push({
      name: rec.name,
      since,
      replayMs: ok ? marker!.at - t0 : -1,
      resumedSeq: marker?.seq ?? null,
      replayed: rec.events.filter((e) => e.conn === conn).length,
    });
  };

  const senders = [0, 1, 2, 3].map((i) => new Recorder(`s${i}`, `s${i}`));
  for (const s of senders) await s.connect(t, a.port, g);
  const loops = senders.map(
    (rec, i) =>
      new RetryingSender(rec, {
        answerMs: 10_000,
        reconnect: async (r) => {
          const target = survivors[i % 2]!;
          await reconnect(r, target);
          // A create acknowledged by the dead node, sent again with its request_id on the
          // survivor: the original ack, nothing stored, nothing broadcast.
          const done = loops[i]!.acked().filter((x) => x.conns.every((k) => k === 0));
          const last = done[done.length - 1];
          if (last) {
            const retried = await r.ask({ operation: "create", type: "text", body: last.body }, last.requestId, 10_000);
            idempotency.push({ name: r.name, requestId: last.requestId, original: last.ack, retried });
          }
        },
      }),
  );
  for (const l of loops) l.start();
  await sleep(1_500);
  if (opts.beforeKill) await opts.beforeKill(t);
  const ackedBeforeKill = loops.reduce((n, l) => n + l.acked().length, 0);
  t.ok(ackedBeforeKill > 0, `${ackedBeforeKill} creates acknowledged by A before it died`);
  // What A has committed so far (exact when A's database link is muted: it can commit no more).
  const seqAtKill = Number((await db.query("SELECT last_seq FROM groups WHERE name = $1", [g])).rows[0]?.last_seq ?? 0);
  const killedAt = Date.now();
  a.child.kill("SIGKILL");
  t.equal(await within(a.exited, 5_000, "A's death"), "SIGKILL", "node A is gone");

  const allReconnected = await Promise.all(senders.map((s) => s.until(() => s.conns >= 2 && s.open && s.resumed.length >= 1, 20_000)));
  t.ok(allReconnected.every(Boolean), `every sender reconnected and resumed (${Date.now() - killedAt} ms after the kill)`);
  await sleep(1_500);
  await Promise.all(loops.map((l) => l.stop()));

  // --- the verdict ---
  const events = (await db.query("SELECT seq, operation, message_id FROM group_events WHERE group_name = $1 ORDER BY seq", [g])).rows as { seq: number; message_id: string }[];
  const N = events.length;
  t.same(
    events.map((e) => e.seq),
    range(N),
    `the database holds seq 1..${N}`,
  );
  const all = [...senders, ...listeners];
  await Promise.all(all.map((r) => r.until(() => r.seqs.length >= N, 10_000)));
  await sleep(500); // late duplicates show up here
  for (const r of all) assertSeqs(t, r, N);

  for (const s of seams) t.equal(s.resumedSeq, s.since + s.replayed, `${s.name}: resumed carries the last replayed seq (since ${s.since}, ${s.replayed} replayed)`);
  for (const s of senders) {
    const seam = seams.find((x) => x.name === s.name);
    t.ok(seam && seam.replayMs >= 0, `${s.name}: the replay ended with resumed`);
  }

  const attempts = loops.flatMap((l) => [...l.attempts.values()]);
  t.same(
    attempts.filter((x) => x.ack === null),
    [],
    "every create was eventually acknowledged (retried with its request_id after the kill)",
  );
  t.same(loops.flatMap((l) => l.reconnectErrors), [], "reconnects to the survivors were accepted");
  const retriedAcrossKill = attempts.filter((x) => new Set(x.conns).size > 1);
  t.comment(`${retriedAcrossKill.length} creates were in flight at the kill and resent on a survivor: ${JSON.stringify(retriedAcrossKill.map((x) => ({ rid: x.requestId, answers: x.answers.map((a) => (typeof a === "string" ? a : a.operation)) })))}`);
  const acks = attempts.map((x) => x.ack!).filter(Boolean);
  // Requests A stored whose ack never left A (at most a lower bound unless A's database link was
  // muted before the kill): their retry on a survivor must answer the original.
  const committedUnacked = attempts.filter((x) => x.answers[0] === "closed" && x.ack !== null && x.ack.seq! <= seqAtKill);
  t.comment(`${committedUnacked.length} creates were committed by A (seq <= ${seqAtKill}) without their ack reaching the sender: ${JSON.stringify(committedUnacked.map((x) => ({ rid: x.requestId, seq: x.ack!.seq })))}`);
  if (opts.expectCommittedUnacked) t.ok(committedUnacked.length > 0, "the kill caught at least one create committed but not acknowledged");
  for (const x of committedUnacked) {
    const rows = (await db.query("SELECT id, seq FROM messages WHERE group_name = $1 AND user_id = $2 AND request_id = $3", [g, x.requestId.split("-")[0], x.requestId])).rows;
    t.same(rows, [{ id: x.ack!.message_id, seq: x.ack!.seq }], `${x.requestId}: stored once by A; the retry on a survivor answered that original`);
  }
  t.same(acks.map((x) => x.seq).sort((p, q) => p! - q!), range(N), "the final acks carry seq 1..N, each once: every stored message was acknowledged to its sender");
  const ids = new Map(events.map((e) => [e.seq, e.message_id]));
  t.same(acks.filter((x) => ids.get(x.seq!) !== x.message_id), [], "each ack names the message stored with its seq");
  for (const r of all) {
    const creates = r.events.filter((e: StoredEvent) => e.operation === "create").map((e) => e.id);
    const counts = new Map<string, number>();
    for (const id of creates) counts.set(id, (counts.get(id) ?? 0) + 1);
    const wrong = acks.filter((x) => counts.get(x.message_id!) !== 1).map((x) => ({ rid: x.request_id, id: x.message_id, seen: counts.get(x.message_id!) ?? 0 }));
    t.equal(wrong.length, 0, `${r.name} saw every acknowledged message exactly once${wrong.length ? `: ${wrong.length} not, e.g. ${JSON.stringify(wrong.slice(0, 5))}` : ""}`);
  }
  t.equal(idempotency.length, senders.length, "each sender resent an acknowledged create on a survivor");
  for (const x of idempotency) {
    t.match(x.retried, { operation: "ack", message_id: (x.original as { message_id: string }).message_id, seq: (x.original as { seq: number }).seq }, `${x.name}: resending ${x.requestId} on another node answers the original ack`);
  }
  const dup = (await db.query("SELECT user_id, request_id, count(*)::int AS n FROM messages WHERE group_name = $1 GROUP BY 1, 2 HAVING count(*) > 1", [g])).rows;
  t.same(dup, [], "no request_id is stored twice");
  t.same(repeats(acks.map((x) => x.message_id)), [], "no two requests share a message");

  const worst = Math.max(...seams.map((s) => s.replayMs));
  t.comment(`seams: ${JSON.stringify(seams)}; worst replay ${worst} ms`);
  for (const r of all) r.client?.ws.terminate();
}

t.test("SIGKILL of the node the senders are on: reconnect with since elsewhere, resend unacknowledged creates", async (t) => {
  const a = await spawnNode(t, { DATABASE_URL: url, REDIS_URL });
  await killUnderTraffic(t, a);
});

t.test("the node dies holding events it stored but never published (its Redis link was cut first)", async (t) => {
  // A reaches Redis through a proxy; cutting it leaves A storing and acknowledging creates whose
  // events wait in A's publish queue, and die with it. The survivors learn of them only from the
  // database: by gap repair (their listeners) or by the replay (the reconnecting senders).
  const proxy = await TcpProxy.start(t, Number(redisUrl.port || 6379), redisUrl.hostname);
  const viaProxy = new URL(REDIS_URL);
  viaProxy.port = String(proxy.port);
  const a = await spawnNode(t, { DATABASE_URL: url, REDIS_URL: viaProxy.toString() });
  await killUnderTraffic(t, a, {
    beforeKill: async (t) => {
      await proxy.cut("reset");
      await sleep(500);
      t.comment("A's Redis link cut 500 ms before the kill");
    },
  });
});

t.test("the node dies right after sending a create batch: stored, never acknowledged; the retry elsewhere answers the original", async (t) => {
  // A reaches PostgreSQL through a proxy that, on A's next create batch (one autocommitted call of
  // chat_create_messages), lets the call through and then drops everything PostgreSQL says back:
  // the batch commits, A never learns, and A is killed before it could ack or publish. Its
  // senders resend the same request_ids elsewhere.
  const pgUrl = new URL(url);
  const proxy = await TcpProxy.start(t, Number(pgUrl.port || 5432), pgUrl.hostname);
  pgUrl.port = String(proxy.port);
  const a = await spawnNode(t, { DATABASE_URL: pgUrl.toString(), REDIS_URL });
  await killUnderTraffic(t, a, {
    expectCommittedUnacked: true,
    beforeKill: async (t) => {
      await within(proxy.muteAfter("chat_create_messages"), 5_000, "a create batch from A");
      await sleep(200); // PostgreSQL has committed; A heard nothing back
      t.comment("A's create batch reached PostgreSQL; its answer was dropped; A is killed now");
    },
  });
});
