// Scale-out: three node processes on one database and one Redis. A client on any node receives
// every event of its group exactly once, whichever node the sender is on; groups stay apart;
// seq stays 1..N without gap or repeat under concurrent senders on different nodes.
import t from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { spawnNode, type NodeProcess } from "../helpers/node.ts";
import { uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";

// Set-up runs in t.before: if it fails, tap still runs the teardowns (database dropped, nodes
// killed), which it skips when a top-level await throws.
let nodes: NodeProcess[] = [];
let db!: Awaited<ReturnType<typeof sql>>;
t.before(async () => {
  await requireRedis();
  const url = await freshDatabase(t);
  // Three nodes starting at once on an empty database also exercises the migration lock.
  nodes = await Promise.all([0, 1, 2].map(() => spawnNode(t, { DATABASE_URL: url, REDIS_URL })));
  await Promise.all(nodes.map((n) => untilReady(n.port)));
  db = await sql(t, url);
});

type MessageFrame = Extract<Frame, { operation: "create" | "update" | "reply" }>;

/** The next `n` frames matching `match`, in arrival order. */
async function take(c: ChatClient, n: number, match: (f: Frame) => boolean, ms = 5_000): Promise<Frame[]> {
  const deadline = Date.now() + ms;
  const out: Frame[] = [];
  while (out.length < n) out.push(await c.next(match, Math.max(1, deadline - Date.now())));
  return out;
}

const countBy = <T>(xs: T[]) => {
  const m = new Map<T, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
};
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

t.test("the three nodes start together on one empty database and one Redis", async (t) => {
  t.equal(new Set(nodes.map((n) => n.port)).size, 3, "three distinct nodes");
  for (const n of nodes) t.match(n.logs.find((l) => l.msg === "listening"), { bus: "redis" });
});

t.test("a client on every node sees a create sent on any node exactly once", async (t) => {
  const g = uniqueGroup("xnode-create");
  const clients = await Promise.all(nodes.map((n, i) => connect(t, n.port, g, { user: `u${i}` })));
  const acks = [];
  for (const [i, c] of clients.entries()) {
    const ack = await c.request({ operation: "create", type: "text", body: `from node ${i}` });
    t.match(ack, { operation: "ack", message_id: String, seq: i + 1 }, `node ${i} acknowledges its create`);
    acks.push(ack);
  }
  const ids = acks.map((a) => a.message_id as string);
  for (const [i, c] of clients.entries()) {
    const events = (await take(c, 3, (f) => f.operation === "create")) as MessageFrame[];
    // A duplicate would take the place of a missing event here, or be left over for nothingMore.
    t.same([...countBy(events.map((e) => e.message.id)).entries()].sort(), ids.map((id) => [id, 1]).sort(), `client on node ${i} got each create once`);
    for (const [k, e] of events.entries()) {
      const from = ids.indexOf(e.message.id);
      t.match(e, { operation: "create", seq: from + 1, message: { user: `u${from}`, body: `from node ${from}` } }, `client on node ${i}, event ${k}`);
    }
    await c.nothingMore(t, 500);
  }
});

t.test("update, reply, delete, seen and the read marker it moves, sent on one node, reach the clients of the other nodes exactly once", async (t) => {
  const g = uniqueGroup("xnode-ops");
  const [a, b, c] = await Promise.all(nodes.map((n, i) => connect(t, n.port, g, { user: ["alice", "bob", "carol"][i]! })));
  const clients = [a!, b!, c!];
  const m = await a!.request({ operation: "create", type: "text", body: "original" });
  for (const x of clients) await x.next((f) => f.operation === "create" && f.message.id === m.message_id);

  t.match(await a!.request({ operation: "update", message_id: m.message_id, body: "edited" }), { operation: "ack", seq: 2 });
  const r = await b!.request({ operation: "reply", message_id: m.message_id, type: "text", body: "an answer" });
  t.match(r, { operation: "ack", seq: 3 });
  const seen = await c!.request({ operation: "seen", message_id: m.message_id });
  t.match(seen, { operation: "ack", seen_at: String });
  t.match(await a!.request({ operation: "delete", message_id: r.message_id }), { operation: "error", code: "forbidden" }, "only bob may delete his reply");
  t.match(await b!.request({ operation: "delete", message_id: r.message_id }), { operation: "ack", seq: 4 });

  for (const [i, x] of clients.entries()) {
    t.match(await x.next((f) => f.operation === "update"), { seq: 2, message: { id: m.message_id, body: "edited", user: "alice" } }, `update on node ${i}`);
    t.match(await x.next((f) => f.operation === "reply"), { seq: 3, message: { id: r.message_id, reply_to: m.message_id, user: "bob" } }, `reply on node ${i}`);
    t.match(await x.next((f) => f.operation === "seen"), { message_id: m.message_id, user: "carol", seen_at: seen.seen_at }, `seen on node ${i}`);
    // The seen moved carol's read marker to the message's seq: one `read` event, on every node.
    t.match(await x.next((f) => f.operation === "read"), { group: g, user: "carol", read_seq: 1 }, `carol's read marker on node ${i}`);
    t.match(await x.next((f) => f.operation === "delete"), { seq: 4, message_id: r.message_id, user: "bob" }, `delete on node ${i}`);
    await x.nothingMore(t, 500);
  }
});

t.test("a client in group X on every node receives nothing from group Y", async (t) => {
  const gx = uniqueGroup("xnode-iso-x");
  const gy = uniqueGroup("xnode-iso-y");
  const xs = await Promise.all(nodes.map((n) => connect(t, n.port, gx, { user: "x" })));
  const ys = await Promise.all(nodes.map((n, i) => connect(t, n.port, gy, { user: `y${i}` })));
  for (const [i, y] of ys.entries()) {
    t.match(await y.request({ operation: "create", type: "text", body: `y from ${i}` }), { operation: "ack" });
    t.match(await y.request({ operation: "typing", typing_status: "typing" }), { operation: "ack" });
  }
  // Every Y event has reached every node (each Y client saw all of them), so the X clients had their chance.
  for (const y of ys) {
    await take(y, 3, (f) => f.operation === "create");
    await take(y, 3, (f) => f.operation === "typing");
    await y.nothingMore(t, 0);
  }
  for (const x of xs) await x.nothingMore(t, 300);
  // And the X group still works on its own: its seq starts at 1, untouched by Y's.
  t.match(await xs[1]!.request({ operation: "create", type: "text", body: "x" }), { operation: "ack", seq: 1 });
  for (const x of xs) await x.next((f) => f.operation === "create");
  for (const y of ys) await y.nothingMore(t, 300);
});

t.test("concurrent senders on three nodes: acks carry seq 1..N exactly once and every client gets all N creates once", async (t) => {
  const g = uniqueGroup("xnode-load");
  const PER_CLIENT = 30;
  const senders = (await Promise.all(nodes.flatMap((n, i) => [0, 1].map((k) => connect(t, n.port, g, { user: `s${i}${k}` }))))) as ChatClient[];
  const listeners = await Promise.all(nodes.map((n) => connect(t, n.port, g, { user: "listener" })));
  const N = senders.length * PER_CLIENT;
  for (let k = 0; k < PER_CLIENT; k++) {
    for (const [i, s] of senders.entries()) s.send({ operation: "create", type: "text", body: `s${i} #${k}`, request_id: `s${i}-${k}` });
  }
  const ackSeqs: number[] = [];
  for (const [i, s] of senders.entries()) {
    const acks = (await take(s, PER_CLIENT, (f) => f.operation === "ack" || f.operation === "error", 20_000)) as Record<string, unknown>[];
    t.same(acks.filter((a) => a.operation !== "ack"), [], `sender ${i}: no errors`);
    t.same(acks.map((a) => a.request_id).sort(), Array.from({ length: PER_CLIENT }, (_, k) => `s${i}-${k}`).sort(), `sender ${i}: one ack per request`);
    ackSeqs.push(...acks.map((a) => a.seq as number));
  }
  t.same([...ackSeqs].sort((x, y) => x - y), range(N), `the acks' seqs are exactly 1..${N}`);

  for (const [i, c] of [...senders, ...listeners].entries()) {
    const events = (await take(c, N, (f) => f.operation === "create", 20_000)) as MessageFrame[];
    const seqs = events.map((e) => e.seq).sort((x, y) => x - y);
    t.same(seqs, range(N), `client ${i} got the create of every seq 1..${N}, each once`);
    await c.nothingMore(t, i === 0 ? 500 : 0);
  }
  const stored = await db.query("SELECT count(*)::int AS n, min(seq) AS lo, max(seq) AS hi FROM messages WHERE group_name = $1", [g]);
  t.same(stored.rows[0], { n: N, lo: 1, hi: N }, "the database holds the N messages");
});

t.test("typing crosses nodes and is not stored", async (t) => {
  const g = uniqueGroup("xnode-typing");
  const clients = await Promise.all(nodes.map((n, i) => connect(t, n.port, g, { user: `t${i}` })));
  t.same(await clients[0]!.request({ operation: "typing", typing_status: "typing" }), { operation: "ack", group: g, request_id: "r1" });
  for (const [i, c] of clients.entries()) {
    t.same(await c.next((f) => f.operation === "typing"), { operation: "typing", group: g, user: "t0", typing_status: "typing" }, `typing seen on node ${i}`);
    await c.nothingMore(t, i === 0 ? 400 : 0);
  }
  const counts = await db.query(
    `SELECT (SELECT count(*)::int FROM messages WHERE group_name = $1) AS messages,
            (SELECT count(*)::int FROM group_events WHERE group_name = $1) AS events,
            (SELECT count(*)::int FROM groups WHERE name = $1) AS groups`,
    [g],
  );
  t.same(counts.rows[0], { messages: 0, events: 0, groups: 0 }, "nothing stored, no seq taken");
  // The next stored event of the group is seq 1: typing took none.
  t.match(await clients[2]!.request({ operation: "create", type: "text", body: "after typing" }), { operation: "ack", seq: 1 });
});
