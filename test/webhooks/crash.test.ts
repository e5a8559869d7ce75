// A node SIGKILLed in the middle of a webhook delivery loses nothing: its lease on the group
// expires and another node delivers the events again, in order (at least once: the interrupted
// one twice, with the same X-Chatroom-Delivery).
import t from "tap";
import { ChatServerClient } from "../../src/client/server/index.ts";
import { spawnNode } from "../helpers/node.ts";
import { eventually, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";
import { WebhookReceiver } from "../helpers/webhook-receiver.ts";

const SECRET = "webhook-secret-0123456789";
const KEY = "api-key-0123456789abcdef";

t.test("a node killed mid-delivery: another node delivers everything, in order", async (t) => {
  await requireRedis();
  const url = await freshDatabase(t);
  const receiver = new WebhookReceiver(SECRET);
  const env = { DATABASE_URL: url, REDIS_URL, SERVER_API_KEYS: KEY, WEBHOOK_URL: await receiver.start(t), WEBHOOK_SECRET: SECRET, WEBHOOK_TIMEOUT_MS: "4000", WEBHOOK_POLL_MS: "100" };
  const a = await spawnNode(t, env);
  await untilReady(a.port);
  const g = uniqueGroup("wh-kill");
  // The first attempt at seq 2 never gets an answer: node A is stuck in it when it dies (its
  // timeout, 4 s, leaves a loaded machine ample time to kill it first).
  receiver.answer = (e, attempt) => (e.seq === 2 && attempt === 1 ? "hang" : 200);
  const api = new ChatServerClient({ url: `http://127.0.0.1:${a.port}`, apiKey: KEY });
  for (let i = 0; i < 4; i++) await api.publish(g, { user: "bot", type: "text", body: `m${i}` });
  t.ok(await eventually(() => receiver.of(g).some((r) => r.event.seq === 2), 10_000), "node A is delivering seq 2");
  t.same(receiver.accepted(g), [1]);
  a.child.kill("SIGKILL");
  await a.exited;
  const db = await sql(t, url);
  const { rows } = await db.query(`SELECT seq, lease_owner IS NOT NULL AS leased FROM webhook_outbox WHERE group_name = $1 ORDER BY seq`, [g]);
  t.same(rows.map((r) => r.seq), [2, 3, 4], "the undelivered events are still in the outbox");
  t.equal(rows[0].leased, true, "its head is leased by the dead node, which holds the whole group");
  const b = await spawnNode(t, env);
  await untilReady(b.port);
  t.ok(await receiver.until(g, 4, 30_000), "node B delivers them once the lease (2 x 4 s + 2 s) expires");
  t.same(receiver.accepted(g), [1, 2, 3, 4], "in order, nothing lost");
  t.same(receiver.of(g).map((r) => r.delivery), [`${g}:1`, `${g}:2`, `${g}:2`, `${g}:3`, `${g}:4`], "the interrupted one twice, with the same delivery id");
});
