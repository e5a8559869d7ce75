// The create batch (one call of chat_create_messages per batch) keeps the store's guarantees, on
// PostgreSQL and on the embedded PGlite alike (the same contract run against both): creates
// submitted together are written as one batch (writeConcurrency 1: they queue behind a first
// write), and within it each group's seqs follow submission order with no gap; a retry of a stored
// message, a repeat within the batch, and a refused reply take no seq; a group created only for
// refused items is not left behind; every new message has its webhook outbox row with the event
// as acknowledged; and (PostgreSQL) a write that waits for a group's lock past its deadline rolls
// back and is refused `unavailable`, committing nothing later.
import t, { type Test } from "tap";
import { ChatError } from "../../src/protocol/index.ts";
import { openDatabase, type Database } from "../../src/store/database.ts";
import { parseOutboxEvent } from "../../src/store/outbox.ts";
import type { ChatStore } from "../../src/store/store.ts";
import { tempDir } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

type NewMessage = Parameters<ChatStore["createMessage"]>[0];
const text = (group: string, user: string, body: string, more: Partial<NewMessage> = {}): NewMessage => ({ group, user, type: "text", body, attachment: null, replyTo: null, ...more });
const key = (requestId: string, windowMs = 60_000) => ({ retryKey: { requestId, windowMs } });
const settle = <T>(p: Promise<T>) => p.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The contract is not about deadlines: a store deadline no loaded machine reaches (two embedded
// databases start in this file, each a WebAssembly PostgreSQL, hence the file's longer timeout).
const LONG_DEADLINE_MS = 60_000;
t.setTimeout(300_000);

async function contract(t: Test, open: () => Promise<Database>) {
  const db = await open();
  t.teardown(() => db.store.close());
  const store = db.store;
  const rows = (q: string, ...params: unknown[]) => db.prisma.$queryRawUnsafe<Record<string, unknown>[]>(q, ...params);

  const stored = await store.createMessage(text("a", "u1", "stored earlier", key("k-old")));
  const target = await store.createMessage(text("a", "u2", "reply target"));
  const gone = await store.createMessage(text("a", "u2", "deleted target"));
  await store.deleteMessage({ group: "a", user: "u2", messageId: gone.message.id });
  const elsewhere = await store.createMessage(text("b", "u1", "in b"));
  const expired = await store.createMessage(text("a", "u1", "expired key", key("k-expired")));
  await sleep(20);
  t.equal(stored.seq, 1);

  // One batch: everything below is submitted while the first write holds the only slot.
  const first = store.createMessage(text("warm", "u", "first"));
  const results = await Promise.all(
    [
      text("a", "u1", "a-1", key("k-1")),
      text("b", "u1", "b-1"),
      text("a", "u1", "a-1 again", key("k-1")), // repeat within the batch
      text("a", "u1", "stored earlier, retried", key("k-old")), // retry of a stored message
      text("a", "u3", "reply", { replyTo: target.message.id }),
      text("a", "u3", "reply to a deleted message", { replyTo: gone.message.id }),
      text("a", "u3", "reply to another group's message", { replyTo: elsewhere.message.id }),
      text("fresh-refused", "u3", "only item refused", { replyTo: "no-such-message" }),
      text("a", "u1", "expired key reused", key("k-expired", 5)),
      text("c", "u1", "file", { type: "file", attachment: { name: "f.bin", contentType: "application/octet-stream", data: new Uint8Array([1, 2, 3]) } }),
      text("a", "u1", "a-last"),
      // Files travel to the function back to back in one parameter: each item gets its own bytes.
      text("c", "u1", "file 2", { type: "file", attachment: { name: "g.bin", contentType: "image/png", data: new Uint8Array(300).map((_, i) => i % 251) } }),
      text("c", "u1", "file 3", { type: "file", attachment: { name: "h.bin", contentType: "application/octet-stream", data: new Uint8Array([9]) } }),
    ].map((m) => settle(store.createMessage(m))),
  );
  await first;
  const ok = (i: number) => {
    const r = results[i]!;
    if (!r.ok) throw new Error(`item ${i} failed: ${String(r.error)}`);
    return r.value;
  };
  const notFound = (i: number) => {
    const r = results[i]!;
    return !r.ok && r.error instanceof ChatError && r.error.code === "not_found";
  };
  // a had seqs 1..5 (stored, target, gone, its delete, expired); b had 1.
  t.match(ok(0), { seq: 6, duplicate: false, message: { body: "a-1", userId: "u1" } });
  t.match(ok(1), { seq: 2, duplicate: false });
  t.match(ok(2), { seq: 6, duplicate: true, message: { id: ok(0).message.id, body: "a-1" } }, "a repeat in the batch answers the first");
  t.match(ok(3), { seq: 1, duplicate: true, message: { id: stored.message.id, body: "stored earlier" } }, "a retry answers the stored original");
  t.same(ok(3).message.createdAt, stored.message.createdAt);
  t.match(ok(4), { seq: 7, duplicate: false, message: { replyToId: target.message.id } });
  t.ok(notFound(5), "a reply to a deleted message is refused");
  t.ok(notFound(6), "a reply to another group's message is refused");
  t.ok(notFound(7), "a reply to a missing message is refused");
  t.match(ok(8), { seq: 8, duplicate: false, message: { body: "expired key reused" } }, "a key past its window stores again");
  t.not(ok(8).message.id, expired.message.id);
  t.match(ok(9), { seq: 1, message: { type: "file", attachment: { name: "f.bin", contentType: "application/octet-stream", size: 3 } } });
  t.match(ok(10), { seq: 9, duplicate: false });

  // The log agrees with the acks: gap-free, in submission order, nothing for refused or repeated items.
  const events = await rows(`SELECT seq, operation, message_id FROM group_events WHERE group_name = 'a' ORDER BY seq`);
  t.same(events.map((e) => Number(e.seq)), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.same(events.slice(5).map((e) => [e.operation, e.message_id]), [["create", ok(0).message.id], ["reply", ok(4).message.id], ["create", ok(8).message.id], ["create", ok(10).message.id]]);
  t.same((await rows(`SELECT name, last_seq FROM groups ORDER BY name`)).map((g) => [g.name, Number(g.last_seq)]), [["a", 9], ["b", 2], ["c", 3], ["warm", 1]], "no row for a group whose only item was refused");
  // What reads return is what the acks said.
  const history = await store.history({ group: "a", limit: 50 });
  const byId = new Map(history.messages.map((m) => [m.id, m]));
  for (const i of [0, 4, 8, 10]) t.same(byId.get(ok(i).message.id), ok(i).message, `item ${i}: stored as acknowledged`);
  const file = await store.readAttachment(ok(9).message.attachment!.id, 0, 10);
  t.same(Array.from(file!), [1, 2, 3], "the file's bytes");
  t.match(ok(11), { seq: 2, message: { attachment: { name: "g.bin", contentType: "image/png", size: 300 } } });
  t.match(ok(12), { seq: 3, message: { attachment: { name: "h.bin", size: 1 } } });
  t.same(Array.from((await store.readAttachment(ok(11).message.attachment!.id, 0, 1000))!), Array.from(new Uint8Array(300).map((_, i) => i % 251)), "the second file's bytes, cut from the batch's at its place");
  t.same(Array.from((await store.readAttachment(ok(12).message.attachment!.id, 0, 10))!), [9], "the third file's bytes");

  // The outbox holds each new message's event as acknowledged, in the same transaction.
  const outbox = await rows(`SELECT group_name, seq, event FROM webhook_outbox WHERE group_name IN ('a', 'c') AND seq >= 6 OR group_name = 'c' ORDER BY group_name, seq`);
  const events2 = new Map(outbox.map((r) => [`${r.group_name}/${r.seq}`, parseOutboxEvent(r.event as string)]));
  t.same(events2.get("a/6"), { operation: "create", user: "u1", message: ok(0).message });
  t.same(events2.get("a/7"), { operation: "reply", user: "u3", message: ok(4).message });
  t.same(events2.get("c/1"), { operation: "create", user: "u1", message: ok(9).message });
  t.equal(events2.size, 7, "one row per new message (a/6, a/7, a/8, a/9, c/1, c/2, c/3)");
}

t.test("on PostgreSQL", async (t) => {
  const url = await freshDatabase(t);
  await contract(t, () => openDatabase({ databaseUrl: url, dataDir: "unused", writeConcurrency: 1, webhookOutbox: true, writeTimeoutMs: LONG_DEADLINE_MS }));
});

t.test("on the embedded database (PGlite)", async (t) => {
  const dir = await tempDir(t);
  await contract(t, () => openDatabase({ dataDir: dir, writeConcurrency: 1, webhookOutbox: true, writeTimeoutMs: LONG_DEADLINE_MS }));
});

t.test("a create held behind a group's lock past its deadline rolls back and is refused unavailable", async (t) => {
  const url = await freshDatabase(t);
  const db = await openDatabase({ databaseUrl: url, dataDir: "unused", writeTimeoutMs: 1_000 });
  t.teardown(() => db.store.close());
  const locker = await sql(t, url);
  await locker.query(`INSERT INTO "groups" ("name") VALUES ('g')`);
  await locker.query("BEGIN");
  await locker.query(`SELECT * FROM "groups" WHERE "name" = 'g' FOR UPDATE`);
  const started = Date.now();
  const held = await settle(db.store.createMessage(text("g", "u", "behind the lock")));
  const waited = Date.now() - started;
  t.match(held, { ok: false, error: { code: "unavailable" } }, `unavailable (${held.ok ? "stored" : String(held.error)})`);
  t.ok(waited >= 750, `it waited for most of its budget (${waited} ms)`);
  await locker.query("COMMIT");
  await sleep(300);
  t.same((await locker.query(`SELECT count(*)::int AS n FROM group_events WHERE group_name = 'g'`)).rows, [{ n: 0 }], "nothing committed later");
  // Once the lock is gone the group's next write takes seq 1 (a 1 s budget may be too short on a
  // loaded machine: tried until it fits).
  let after: Awaited<ReturnType<ChatStore["createMessage"]>> | undefined;
  for (let i = 0; i < 30 && !after; i++) after = await db.store.createMessage(text("g", "u", "after")).catch(() => undefined);
  t.match(after, { seq: 1 }, "the next write takes seq 1: the refused one took none");
});

t.test("a create batch finds retries by index even when its plan was cached while the table was empty", async (t) => {
  const url = await freshDatabase(t);
  // One pooled connection: its cached plans are the ones used throughout.
  const db = await openDatabase({ databaseUrl: url, dataDir: "unused", poolSize: 1, writeConcurrency: 1, writeTimeoutMs: LONG_DEADLINE_MS });
  t.teardown(() => db.store.close());
  const admin = await sql(t, url);
  // Two versions: files as bytes (what this release calls) and the TEXT[] one kept for a rolling update.
  const config = (await admin.query(`SELECT pg_get_function_identity_arguments(oid) LIKE '%p_att_data bytea%' AS bytes, proconfig FROM pg_proc WHERE proname = 'chat_create_messages' ORDER BY 1`)).rows;
  t.same(config, [{ bytes: false, proconfig: ["enable_seqscan=off"] }, { bytes: true, proconfig: ["enable_seqscan=off"] }], "the function never plans a sequential scan (a later CREATE OR REPLACE must keep the SET)");
  // Plans are cached while "messages" is empty: batches of several groups, several times over
  // (PostgreSQL's plan cache settles after five executions).
  let n = 0;
  const batch = () => Promise.all(Array.from({ length: 20 }, (_, i) => db.store.createMessage(text(`g${i % 5}`, "u", `m${n++}`, key(`k${n}`)))));
  for (let i = 0; i < 8; i++) await batch();
  // The table grows behind the cached plans' back (no ANALYZE: this server runs autovacuum off).
  await admin.query(`INSERT INTO "groups" ("name", "last_seq") VALUES ('bulk', 200000)`);
  await admin.query(`INSERT INTO "messages" ("id", "group_name", "user_id", "type", "body", "seq", "request_id", "created_at")
    SELECT 'bulk' || i, 'bulk', 'u', 'text', 'x', i, 'r' || i, now() FROM generate_series(1, 200000) AS i`);
  const scans = async () => Number((await admin.query(`SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'messages'`)).rows[0].seq_scan);
  await admin.query(`SELECT pg_stat_force_next_flush()`).catch(() => undefined);
  await sleep(600); // statistics are flushed at most every 500 ms
  const before = await scans();
  for (let i = 0; i < 5; i++) await batch();
  await sleep(600);
  t.equal(await scans(), before, "no batch scanned the 200,000 messages");
});

t.test("PostgreSQL ending the node's idle pooled connections does not end the process; the next write opens new ones", async (t) => {
  const url = await freshDatabase(t);
  const errors: Error[] = [];
  const db = await openDatabase({ databaseUrl: url, dataDir: "unused", poolSize: 4, onPoolError: (err) => errors.push(err) });
  t.teardown(() => db.store.close());
  // Fill the pool: several writes of different groups at once.
  await Promise.all(Array.from({ length: 8 }, (_, i) => db.store.createMessage(text(`g${i}`, "u", "before"))));
  const admin = await sql(t, url);
  const ended = (await admin.query(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)).rows[0].n;
  t.ok(ended >= 1, `PostgreSQL ended ${ended} pooled connections`);
  for (let i = 0; i < 50 && errors.length < ended; i++) await sleep(20);
  t.ok(errors.length >= 1, `the pool reported it (${errors.map((e) => (e as { code?: string }).code).join(", ")}) instead of throwing`);
  const after = await db.store.createMessage(text("g0", "u", "after"));
  t.equal(after.seq, 2, "the next write goes through on a new connection");
});
