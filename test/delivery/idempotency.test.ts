// Idempotent retries: a create or reply re-sent with the same request_id by the same user in the
// same group stores nothing new and answers the original ack, on whichever node.
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";

await requireRedis();
const url = await freshDatabase(t);
const env = { DATABASE_URL: url, REDIS_URL, RETRY_WINDOW_S: "2" };
const [n1, n2] = [await startInProcess(t, env), await startInProcess(t, env)];
const db = await sql(t, url);
const group = `idem-${process.pid}`;
const count = async (body: string) => (await db.query("SELECT count(*)::int AS n FROM messages WHERE body = $1", [body])).rows[0].n;

t.test("a retried create answers the original ack and stores nothing, on any node", async (t) => {
  const a1 = await connect(t, n1.port, group, { user: "alice" });
  const a2 = await connect(t, n2.port, group, { user: "alice" });
  const watcher = await connect(t, n2.port, group, { user: "w" });
  const frame = { operation: "create", type: "text", body: "once", request_id: "retry-1" };
  a1.send(frame);
  const first = await a1.next((f) => f.operation === "ack");
  a1.send(frame);
  const again = await a1.next((f) => f.operation === "ack");
  a2.send(frame);
  const elsewhere = await a2.next((f) => f.operation === "ack");
  t.same(again, first, "same node: the original ack");
  t.same(elsewhere, first, "other node: the original ack");
  t.equal(await count("once"), 1);
  t.match(await watcher.next((f) => f.operation === "create"), { seq: (first as { seq: number }).seq });
  await watcher.nothingMore(t);
  const seq = (await db.query("SELECT last_seq FROM groups WHERE name = $1", [group])).rows[0].last_seq;
  t.equal(seq, (first as { seq: number }).seq, "retries take no seq");
});

t.test("concurrent retries racing on two nodes store once", async (t) => {
  const a1 = await connect(t, n1.port, group, { user: "bob" });
  const a2 = await connect(t, n2.port, group, { user: "bob" });
  const target = await firstMessageId();
  const acks = await Promise.all(
    Array.from({ length: 10 }, (_, i) => (i % 2 ? a1 : a2)).map((c) => {
      c.send({ operation: "reply", type: "text", body: "raced", request_id: "race", message_id: target });
      return c.next((f) => f.operation === "ack" || f.operation === "error");
    }),
  );
  t.equal(new Set(acks.map((a) => JSON.stringify(a))).size, 1, "every answer is the same ack");
  t.equal(acks[0]!.operation, "ack");
  t.equal(await count("raced"), 1);
});

async function firstMessageId(): Promise<string> {
  return (await db.query("SELECT id FROM messages WHERE group_name = $1 ORDER BY seq LIMIT 1", [group])).rows[0].id;
}

t.test("the same request_id from another user, in another group, or after the window is a new message", async (t) => {
  const alice = await connect(t, n1.port, group, { user: "alice" });
  const carol = await connect(t, n1.port, group, { user: "carol" });
  const other = await connect(t, n1.port, `${group}-other`, { user: "alice" });
  const f = { operation: "create", type: "text", body: "shared-rid", request_id: "rid-x" };
  alice.send(f);
  carol.send(f);
  other.send(f);
  const acks = await Promise.all([alice, carol, other].map((c) => c.next((x) => x.operation === "ack")));
  t.equal(new Set(acks.map((a) => (a as { message_id: string }).message_id)).size, 3);
  await new Promise((r) => setTimeout(r, 2200));
  alice.send(f);
  const late = await alice.next((x) => x.operation === "ack");
  t.not((late as { message_id: string }).message_id, (acks[0] as { message_id: string }).message_id, "after RETRY_WINDOW_S a retry is new");
  t.equal(await count("shared-rid"), 4);
});

t.test("a create without request_id is never de-duplicated", async (t) => {
  const a = await connect(t, n1.port, group, { user: "dave" });
  a.send({ operation: "create", type: "text", body: "twice" });
  a.send({ operation: "create", type: "text", body: "twice" });
  await a.next((f) => f.operation === "create");
  await a.next((f) => f.operation === "create");
  t.equal(await count("twice"), 2);
});
