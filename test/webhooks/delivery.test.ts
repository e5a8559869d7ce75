// Webhooks from two node processes to a real local receiver: every stored event (create, reply,
// update, delete; not seen or typing) arrives signed, once, in seq order per group while both
// nodes dispatch at once; a failing receiver holds back only its own group and loses nothing
// once it recovers; events that keep failing are dead-lettered (metrics, API) and can be requeued;
// without WEBHOOK_URL no outbox row is written.
import t from "tap";
import { ChatServerClient, verifyWebhookSignature } from "../../src/client/server/index.ts";
import { connect } from "../helpers/client.ts";
import { spawnNode, startInProcess, type NodeProcess } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";
import { WebhookReceiver } from "../helpers/webhook-receiver.ts";

const SECRET = "webhook-secret-0123456789";
const KEY = "api-key-0123456789abcdef";
const receiver = new WebhookReceiver(SECRET);
let nodes: NodeProcess[] = [];
let url = "";
let db!: Awaited<ReturnType<typeof sql>>;
let apis: ChatServerClient[] = [];
t.before(async () => {
  await requireRedis();
  url = await freshDatabase(t);
  const hook = await receiver.start(t);
  const env = {
    DATABASE_URL: url,
    REDIS_URL,
    SERVER_API_KEYS: KEY,
    WEBHOOK_URL: hook,
    WEBHOOK_SECRET: SECRET,
    WEBHOOK_BACKOFF_BASE_MS: "50",
    WEBHOOK_BACKOFF_MAX_MS: "300",
    WEBHOOK_MAX_ATTEMPTS: "6",
    WEBHOOK_POLL_MS: "100",
  };
  nodes = await Promise.all([0, 1].map(() => spawnNode(t, env)));
  await Promise.all(nodes.map((n) => untilReady(n.port)));
  apis = nodes.map((n) => new ChatServerClient({ url: `http://127.0.0.1:${n.port}`, apiKey: KEY }));
  db = await sql(t, url);
});

const lastSeq = async (g: string) => Number((await db.query(`SELECT last_seq FROM groups WHERE name = $1`, [g])).rows[0]?.last_seq ?? 0);
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

t.test("every stored event arrives once, signed, in seq order per group, with both nodes dispatching", async (t) => {
  const groups = [0, 1, 2, 3].map(() => uniqueGroup("wh-order"));
  await Promise.all(
    groups.map(async (g, gi) => {
      const sockets = await Promise.all(nodes.map((n, i) => connect(t, n.port, g, { user: `u${i}` })));
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const s = sockets[i % 2]!;
        ids.push((await s.request({ operation: "create", type: "text", body: `m${i}` })).message_id as string);
        await apis[(i + gi) % 2]!.publish(g, { user: "bot", type: "text", body: `bot ${i}` });
      }
      await sockets[0]!.request({ operation: "reply", message_id: ids[1], type: "text", body: "re" });
      await sockets[0]!.request({ operation: "update", message_id: ids[0], body: "edited" });
      await sockets[1]!.request({ operation: "delete", message_id: ids[1] });
      await sockets[1]!.request({ operation: "seen", message_id: ids[0] });
      await sockets[1]!.request({ operation: "typing", typing_status: "typing" });
    }),
  );
  for (const g of groups) {
    const n = await lastSeq(g);
    t.equal(n, 15, `${g}: 12 creates, a reply, an update and a delete`);
    t.ok(await receiver.until(g, n), `${g}: all ${n} delivered`);
    const got = receiver.of(g);
    t.same(got.map((r) => r.event.seq), range(n), `${g}: each seq once, in order (no retry, no duplicate)`);
    const { rows } = await db.query(`SELECT seq, operation, user_id FROM group_events WHERE group_name = $1 ORDER BY seq`, [g]);
    t.same(got.map((r) => [r.event.seq, r.event.operation, r.event.user]), rows.map((r) => [r.seq, r.operation, r.user_id]), `${g}: operations and users match the event log`);
    for (const r of got) {
      t.equal(r.delivery, `${g}:${r.event.seq}`);
      t.ok(verifyWebhookSignature(SECRET, r.raw, r.signature));
    }
    t.notOk(verifyWebhookSignature("another-secret-0123456789", got[0]!.raw, got[0]!.signature), "another secret does not verify");
    t.notOk(verifyWebhookSignature(SECRET, got[0]!.raw.replace("m0", "m9"), got[0]!.signature), "a changed body does not verify");
    t.match(got.find((r) => r.event.operation === "delete")!.event, { operation: "delete", message_id: String, user: "u1" });
    t.match(got.find((r) => r.event.operation === "reply")!.event, { operation: "reply", message: { reply_to: String }, user: "u0" });
  }
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM webhook_outbox WHERE group_name = ANY($1)`, [groups]);
  t.equal(rows[0].n, 0, "delivered rows leave the outbox");
  const ok = await Promise.all(nodes.map((n) => metric(n.port, 'chat_webhook_deliveries_total{result="ok"}')));
  t.equal(ok[0]! + ok[1]!, 60, "60 deliveries in all");
  t.ok(ok[0]! > 0 && ok[1]! > 0, `both nodes delivered some (${ok.join(", ")})`);
});

t.test("a failing receiver holds back only its group; once it recovers, nothing is lost or out of order", async (t) => {
  const failing = uniqueGroup("wh-fail");
  const fine = uniqueGroup("wh-fine");
  let recovered = false;
  // Fails until the test says so, but never more than 4 times per event (WEBHOOK_MAX_ATTEMPTS is
  // 6): a slow machine must not turn this into a dead letter.
  receiver.answer = (e, attempt) => (e.group === failing && !recovered && attempt <= 4 ? 503 : 200);
  const bot = await connect(t, nodes[1]!.port, failing, { user: "bot" });
  const first = await apis[0]!.publish(failing, { user: "bot", type: "text", body: "f0" });
  // Edited while its create waits: the create's webhook still shows the message as created.
  t.match(await bot.request({ operation: "update", message_id: first.message_id, body: "f0 edited" }), { seq: 2 });
  for (let i = 1; i < 5; i++) {
    await apis[i % 2]!.publish(failing, { user: "bot", type: "text", body: `f${i}` });
    await apis[i % 2]!.publish(fine, { user: "bot", type: "text", body: `g${i}` });
  }
  await apis[0]!.publish(fine, { user: "bot", type: "text", body: "g5" });
  t.ok(await receiver.until(fine, 5), "the healthy group is delivered meanwhile");
  t.ok(await eventually(() => receiver.of(failing).length >= 2, 10_000), "the failing group is retried");
  recovered = true;
  t.ok(await receiver.until(failing, 6), "everything arrives after recovery");
  const tried = receiver.of(failing);
  const firstOk = tried.findIndex((r) => r.status === 200);
  t.ok(firstOk >= 1 && tried.slice(0, firstOk).every((r) => r.event.seq === 1), "nothing after seq 1 was tried while seq 1 failed");
  t.same(receiver.accepted(failing), range(6), "accepted once each, in order");
  const ok = tried.filter((r) => r.status === 200).map((r) => r.event);
  t.match(ok[0], { seq: 1, operation: "create", message: { id: first.message_id, body: "f0", updated: null } }, "the create shows the message as created");
  t.match(ok[1], { seq: 2, operation: "update", message: { id: first.message_id, body: "f0 edited", updated: String } }, "the update shows the edit");
  t.same(receiver.accepted(fine), range(5));
  receiver.answer = () => 200;
});

t.test("an event that keeps failing is dead-lettered (metrics, API), its group moves on, and a requeue delivers it", async (t) => {
  const g = uniqueGroup("wh-dead");
  let accept = false;
  receiver.answer = (e) => (e.group === g && e.seq === 1 && !accept ? 500 : 200);
  await apis[0]!.publish(g, { user: "bot", type: "text", body: "poison" });
  await apis[1]!.publish(g, { user: "bot", type: "text", body: "after" });
  t.ok(await receiver.until(g, 1), "the next event is delivered once the first is dead");
  t.same(receiver.accepted(g), [2]);
  t.equal(receiver.of(g).filter((r) => r.event.seq === 1).length, 6, "WEBHOOK_MAX_ATTEMPTS attempts");
  const dead = await apis[1]!.deadLetters();
  t.match(dead.dead_letters.filter((d) => d.group === g), [{ group: g, seq: 1, attempts: 6, last_error: "HTTP 500" }]);
  t.ok((await metric(nodes[0]!.port, 'chat_webhook_outbox_rows{state="dead"}'))! >= 1, "dead letters are in the metrics");
  const counts = await Promise.all(nodes.map((n) => metric(n.port, 'chat_webhook_deliveries_total{result="dead"}')));
  t.equal(counts.reduce((a, b) => a! + b!, 0), 1, "one dead-lettering, counted once over both nodes");
  accept = true;
  t.same(await apis[0]!.requeueDeadLetters({ group: g }), { requeued: 1 });
  t.ok(await eventually(() => receiver.accepted(g).includes(1), 10_000), "delivered after the requeue");
  t.same(receiver.accepted(g), [2, 1], "a requeued dead letter comes after what its group delivered meanwhile");
  receiver.answer = () => 200;
});

t.test("without WEBHOOK_URL no outbox row is written", async (t) => {
  const plain = await startInProcess(t, { DATABASE_URL: url });
  const g = uniqueGroup("wh-off");
  const c = await connect(t, plain.port, g, { user: "u" });
  t.match(await c.request({ operation: "create", type: "text", body: "x" }), { seq: 1 });
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM webhook_outbox WHERE group_name = $1`, [g]);
  t.equal(rows[0].n, 0);
  await c.close();
});

t.test("with webhooks on, the OpenAPI document lists the dead-letter routes too", async (t) => {
  const doc = (await (await fetch(`http://127.0.0.1:${nodes[0]!.port}/api/server/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  t.ok(doc.paths["/api/server/webhooks/dead-letters"]?.get, "GET dead-letters");
  t.ok(doc.paths["/api/server/webhooks/dead-letters/requeue"]?.post, "POST requeue");
  const bad = await fetch(`http://127.0.0.1:${nodes[0]!.port}/api/server/webhooks/dead-letters/requeue`, { method: "POST", headers: { authorization: `Bearer ${KEY}` }, body: JSON.stringify({ seq: 0 }) });
  t.equal(bad.status, 400, "its body is validated by the same schema");
  t.match(await bad.json(), { code: "bad_request", message: /seq/ });
});
