// Order: on every socket the stored events of a group arrive in increasing seq with no gap, even
// with concurrent senders on different nodes (whose publishes race each other through Redis).
import t from "tap";
import { connect, type Frame } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { freshDatabase, REDIS_URL, requireRedis } from "../helpers/services.ts";

await requireRedis();
const url = await freshDatabase(t);
const env = { DATABASE_URL: url, REDIS_URL, ORDER_GAP_WAIT_MS: "50" };
const nodes = await Promise.all([spawnNode(t, env), spawnNode(t, env), spawnNode(t, env)]);
const group = `order-${process.pid}`;
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

t.test("every socket sees 1..N in order while nine senders on three nodes write at once", async (t) => {
  const receivers = await Promise.all(nodes.flatMap((n) => [connect(t, n.port, group, { user: "r" }), connect(t, n.port, group, { user: "r" })]));
  const senders = await Promise.all(nodes.flatMap((n, i) => [0, 1, 2].map((k) => connect(t, n.port, group, { user: `s${i}${k}` }))));
  const perSender = 40;
  // Fire without waiting for acks: the nodes' commits and publishes interleave freely.
  for (let k = 0; k < perSender; k++) for (const s of senders) s.send({ operation: "create", type: "text", body: `m${k}`, request_id: `q${k}` });
  const total = perSender * senders.length;
  const acks = await Promise.all(senders.map(async (s) => {
    const seen: number[] = [];
    for (let k = 0; k < perSender; k++) seen.push(((await s.next((f) => f.operation === "ack", 30_000)) as { seq: number }).seq);
    return seen;
  }));
  t.same(acks.flat().sort((a, b) => a - b), range(total), "acks hand out 1..N once each");
  for (const [i, seq] of acks.entries()) t.same(seq, [...seq].sort((a, b) => a - b), `sender ${i}: its own messages keep their send order`);
  for (const [i, r] of receivers.entries()) {
    const got: number[] = [];
    while (got.length < total) {
      const f: Frame = await r.next(undefined, 30_000);
      if (f.operation === "create") got.push(f.seq);
    }
    t.same(got, range(total), `receiver ${i} saw 1..${total} in order, exactly once`);
    await r.nothingMore(t, 100);
  }
});
