// A receiver that does not answer within WEBHOOK_TIMEOUT_MS counts as a failure: the event is
// retried (same delivery id) and its group waits for it, so order holds.
import t from "tap";
import { ChatServerClient } from "../../src/client/server/index.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";
import { WebhookReceiver } from "../helpers/webhook-receiver.ts";

const SECRET = "webhook-secret-0123456789";
const KEY = "api-key-0123456789abcdef";

t.test("a receiver that hangs past the timeout gets the event again, and the group keeps its order", async (t) => {
  const url = await freshDatabase(t);
  const receiver = new WebhookReceiver(SECRET);
  const hook = await receiver.start(t);
  const node = await startInProcess(t, { DATABASE_URL: url, SERVER_API_KEYS: KEY, WEBHOOK_URL: hook, WEBHOOK_SECRET: SECRET, WEBHOOK_TIMEOUT_MS: "300", WEBHOOK_BACKOFF_BASE_MS: "20", WEBHOOK_POLL_MS: "50" });
  const g = uniqueGroup("wh-timeout");
  receiver.answer = (e, attempt) => (e.seq === 1 && attempt === 1 ? "hang" : 200);
  const api = new ChatServerClient({ url: `http://127.0.0.1:${node.port}`, apiKey: KEY });
  await api.publish(g, { user: "bot", type: "text", body: "one" });
  await api.publish(g, { user: "bot", type: "text", body: "two" });
  t.ok(await receiver.until(g, 2, 10_000), "both delivered");
  t.same(receiver.of(g).map((r) => [r.delivery, r.status]), [[`${g}:1`, 0], [`${g}:1`, 200], [`${g}:2`, 200]], "seq 1 timed out, was retried, then seq 2");
  const metrics = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  t.match(metrics, /^chat_webhook_deliveries_total\{result="failed"\} 1$/m);
  t.match(metrics, /^chat_webhook_deliveries_total\{result="ok"\} 2$/m);
  const db = await sql(t, url);
  t.ok(await eventually(async () => (await db.query(`SELECT count(*)::int AS n FROM webhook_outbox`)).rows[0].n === 0, 5_000), "the outbox is empty");
});
