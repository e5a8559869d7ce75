// Graceful shutdown on SIGTERM and SIGINT: readiness turns false at once, the node keeps serving
// for DRAIN_DELAY_MS, then stops listening, closes sockets with 1001, finishes in-flight writes
// and exits 0 within 10 s plus the drain delay.
import t, { type Test } from "tap";
import { connect, type Frame } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { accepts, eventually, httpGet, statusOf, untilReady, within } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

// Set-up runs in t.before: if it fails, tap still runs the teardowns (database dropped, nodes
// killed), which it skips when a top-level await throws.
let url = "";
let db!: Awaited<ReturnType<typeof sql>>;
t.before(async () => {
  url = await freshDatabase(t);
  db = await sql(t, url);
});
const DRAIN_DELAY_MS = 1500;

async function drains(t: Test, signal: "SIGTERM" | "SIGINT") {
  const node = await spawnNode(t, { DATABASE_URL: url, DRAIN_DELAY_MS: String(DRAIN_DELAY_MS) });
  await untilReady(node.port);
  const c = await connect(t, node.port, `drain-${signal}`, { user: "u" });
  let closedAt = 0;
  void c.closed.then(() => (closedAt = Date.now()));
  t.equal(await statusOf(node.port, "/readyz"), 200, "ready before the signal");

  const t0 = Date.now();
  node.child.kill(signal);
  t.ok(await eventually(async () => (await statusOf(node.port, "/readyz")) === 503, 500, 10), `/readyz turns 503 at once after ${signal}`);
  const ready = await httpGet(node.port, "/readyz");
  t.match(ready, { status: 503 });
  if ("body" in ready) t.match(JSON.parse(ready.body), { ready: false, checks: { draining: true } }, "readiness names the drain");

  // During the drain delay the node still listens and serves: readiness 503, liveness 200.
  const seen = { readyz: new Set<number>(), healthz: new Set<number>() };
  while (Date.now() - t0 < DRAIN_DELAY_MS - 300) {
    seen.readyz.add(await statusOf(node.port, "/readyz"));
    seen.healthz.add(await statusOf(node.port, "/healthz"));
    await new Promise((r) => setTimeout(r, 50));
  }
  t.same([...seen.readyz], [503], "/readyz stays 503 during the drain delay");
  t.same([...seen.healthz], [200], "/healthz stays 200 during the drain delay");
  t.equal(closedAt, 0, "the open socket stays open during the drain delay");
  t.match(await c.request({ operation: "create", type: "text", body: "still served while draining" }), { operation: "ack", seq: 1 }, "frames are still served during the drain delay");

  const closed = await within(c.closed, 10_000 + DRAIN_DELAY_MS, "socket close");
  t.equal(closed.code, 1001, "the socket is closed with 1001 going away");
  t.ok(closedAt - t0 >= DRAIN_DELAY_MS - 100, `closed after the drain delay (${closedAt - t0} ms after the signal)`);
  t.equal(await accepts(node.port), false, "the node no longer accepts connections");
  const code = await within(node.exited, 10_000 + DRAIN_DELAY_MS, "exit");
  t.equal(code, 0, `the process exits 0 on ${signal}`);
  t.ok(Date.now() - t0 < 10_000 + DRAIN_DELAY_MS, `within 10 s plus the drain delay (${Date.now() - t0} ms)`);
  t.equal((await db.query("SELECT count(*)::int AS n FROM messages WHERE group_name = $1", [`drain-${signal}`])).rows[0].n, 1);
}

t.test("SIGTERM: readiness false at once, still serving during the drain delay, then sockets closed with 1001 and exit 0", (t) => drains(t, "SIGTERM"));

t.test("SIGINT behaves the same as SIGTERM", (t) => drains(t, "SIGINT"));

t.test("every create acknowledged before the shutdown is stored, none is acknowledged twice", async (t) => {
  const node = await spawnNode(t, { DATABASE_URL: url });
  await untilReady(node.port);
  const g = "shutdown-writes";
  const clients = await Promise.all(["a", "b"].map((user) => connect(t, node.port, g, { user })));
  const PER_CLIENT = 25;
  for (let k = 0; k < PER_CLIENT; k++) {
    for (const [i, c] of clients.entries()) c.send({ operation: "create", type: "text", body: `m${i}-${k}`, request_id: `c${i}-${k}` });
  }
  // Writes are under way; the signal lands in the middle of them.
  const first = await clients[0]!.next((f) => f.operation === "ack");
  node.child.kill("SIGTERM");

  for (const c of clients) t.equal((await within(c.closed, 12_000, "socket close")).code, 1001, "socket closed with 1001");
  t.equal(await within(node.exited, 12_000, "exit"), 0, "exit 0");

  const answers = [first, ...clients.flatMap((c) => c.received)].filter(
    (f): f is Extract<Frame, { operation: "ack" | "error" }> => f.operation === "ack" || f.operation === "error",
  );
  const perRequest = new Map<string, number>();
  for (const a of answers) perRequest.set(String(a.request_id), (perRequest.get(String(a.request_id)) ?? 0) + 1);
  t.same([...perRequest].filter(([, n]) => n > 1), [], "no request is answered twice");
  t.same(answers.filter((a) => a.operation === "error" && a.code !== "unavailable"), [], "the only refusal is unavailable (shutting down)");

  const acks = answers.filter((a): a is Extract<Frame, { operation: "ack" }> => a.operation === "ack");
  t.ok(acks.length >= 1, `${acks.length} of ${2 * PER_CLIENT} creates acknowledged before the close`);
  const rows = (await db.query("SELECT id, seq, body FROM messages WHERE group_name = $1", [g])).rows as { id: string; seq: number; body: string }[];
  const stored = new Map(rows.map((r) => [r.id, r]));
  t.same(acks.filter((a) => !stored.has(a.message_id!)), [], "every acknowledged create is in the database");
  const mismatched = acks.filter((a) => {
    const row = stored.get(a.message_id!);
    return row !== undefined && (row.seq !== a.seq || row.body !== `m${a.request_id.slice(1)}`);
  });
  t.same(mismatched, [], "each is stored with the seq its ack carried and the body its frame sent");
  t.same(new Set(acks.map((a) => a.seq)).size, acks.length, "no seq acknowledged twice");
  const acked = new Set(acks.map((a) => a.message_id));
  t.same(rows.filter((r) => !acked.has(r.id)), [], "nothing was stored without its sender being told");
});
