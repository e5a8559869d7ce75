// A frame answered `unavailable` must not apply later, and a retry of it must apply once. Against
// a real PostgreSQL with STORE_TIMEOUT_MS = 3000 (short, yet long enough for a loaded machine):
// - writes held behind a row lock well past the deadline are answered `unavailable` and, once the
//   lock is released, find themselves rolled back (PostgreSQL cancelled them at the deadline):
//   nothing changed, no seq taken, no event;
// - an update whose COMMIT reached PostgreSQL but whose answer was lost (a proxy drops what the
//   server says back) is answered `unavailable`; retried with its request_id it answers the
//   original ack: one seq, one event, and the watchers get that event once.
import t from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { tempDir, uniqueGroup, within } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

const STORE_TIMEOUT_MS = 3_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const url = await freshDatabase(t);
const db = await sql(t, url);

const answerTo = (c: ChatClient, rid: string, ms = 10_000) => c.next((f) => "request_id" in f && f.request_id === rid, ms);
const events = async (group: string) =>
  (await db.query("SELECT seq, operation FROM group_events WHERE group_name = $1 ORDER BY seq", [group])).rows.map((r: { seq: number; operation: string }) => `${r.seq}:${r.operation}`);

/** Sends `frame` with `rid` until it is acknowledged (the node refuses at once while its circuit is open). */
async function untilAcked(c: ChatClient, frame: Record<string, unknown>, rid: string, ms = 15_000): Promise<Frame> {
  const deadline = Date.now() + ms;
  for (;;) {
    c.send({ ...frame, request_id: rid });
    const a = await answerTo(c, rid);
    if (a.operation === "ack") return a;
    if (a.operation !== "error" || a.code !== "unavailable" || Date.now() > deadline) throw new Error(`${rid}: ${JSON.stringify(a)}`);
    await sleep(200);
  }
}

t.test("writes held behind a lock past the deadline are answered unavailable and never commit later", async (t) => {
  const node = await startInProcess(t, { DATABASE_URL: url, STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS) });
  const group = uniqueGroup("late");
  const alice = await connect(t, node.port, group, { user: "alice" });
  const watcher = await connect(t, node.port, group, { user: "w" });
  const m0 = (await alice.request({ operation: "create", type: "text", body: "original" })) as { message_id: string; seq: number };
  t.equal(m0.seq, 1);
  await watcher.next((f) => f.operation === "create");

  // Another session holds the group's row lock, which every write of the group needs, for twice the deadline.
  const locker = await sql(t, url);
  await locker.query("BEGIN");
  await locker.query(`SELECT * FROM "groups" WHERE "name" = $1 FOR UPDATE`, [group]);
  const sentAt = Date.now();
  const frames = {
    "u-1": { operation: "update", message_id: m0.message_id, body: "edited behind the lock" },
    "c-1": { operation: "create", type: "text", body: "created behind the lock" },
    "r-1": { operation: "reply", message_id: m0.message_id, type: "text", body: "replied behind the lock" },
  };
  for (const [rid, f] of Object.entries(frames)) alice.send({ ...f, request_id: rid });
  for (const rid of Object.keys(frames)) {
    t.match(await answerTo(alice, rid), { operation: "error", code: "unavailable" }, `${rid}: unavailable`);
  }
  const answeredMs = Date.now() - sentAt;
  // The node waits a fifth longer than the deadline for a COMMIT's answer, then answers itself.
  t.ok(answeredMs < STORE_TIMEOUT_MS * 1.2 + 2_000, `answered at the deadline (${answeredMs} ms)`);
  await sleep(2 * STORE_TIMEOUT_MS - answeredMs);
  await locker.query("COMMIT");
  await sleep(2_000); // anything still pending on the node would commit now

  const row = (await db.query("SELECT body, updated_at FROM messages WHERE id = $1", [m0.message_id])).rows[0];
  t.same(row, { body: "original", updated_at: null }, "the update did not apply after its unavailable");
  t.same(await events(group), ["1:create"], "no create, reply or update committed later; no seq taken");
  t.equal((await db.query(`SELECT last_seq FROM "groups" WHERE name = $1`, [group])).rows[0].last_seq, 1);
  await watcher.nothingMore(t);

  // Retried with their request_ids once the database answers again: each applies once.
  const u = await untilAcked(alice, frames["u-1"], "u-1");
  t.match(await untilAcked(alice, frames["u-1"], "u-1"), { seq: (u as { seq: number }).seq }, "a second retry answers the same ack");
  await untilAcked(alice, frames["c-1"], "c-1");
  t.same(await events(group), ["1:create", "2:update", "3:create"]);
  t.match(await watcher.next((f) => f.operation === "update"), { seq: 2 });
  t.match(await watcher.next((f) => f.operation === "create"), { seq: 3 });
  await watcher.nothingMore(t);
});

t.test("an update whose answer was lost after its COMMIT: unavailable, and its retry applies once", async (t) => {
  const pgUrl = new URL(url);
  const proxy = await TcpProxy.start(t, Number(pgUrl.port || 5432), pgUrl.hostname);
  pgUrl.hostname = "127.0.0.1";
  pgUrl.port = String(proxy.port);
  const node = await startInProcess(t, { DATABASE_URL: pgUrl.toString(), STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS) });
  const group = uniqueGroup("lost-commit");
  const alice = await connect(t, node.port, group, { user: "alice" });
  const watcher = await connect(t, node.port, group, { user: "w" });
  const m0 = (await alice.request({ operation: "create", type: "text", body: "original" })) as { message_id: string };
  await watcher.next((f) => f.operation === "create");

  const committed = proxy.muteAfter("COMMIT");
  const edit = { operation: "update", message_id: m0.message_id, body: "edited once" };
  alice.send({ ...edit, request_id: "edit-1" });
  await within(committed, 15_000, "the update's COMMIT");
  t.match(await answerTo(alice, "edit-1"), { operation: "error", code: "unavailable" }, "the node never heard the commit: unavailable");
  t.same(await events(group), ["1:create", "2:update"], "but PostgreSQL committed it");

  // The network comes back (the muted connections are reset); the client retries.
  await proxy.cut("reset");
  await proxy.restore();
  const ack = await untilAcked(alice, edit, "edit-1");
  t.match(ack, { operation: "ack", message_id: m0.message_id, seq: 2 }, "the retry answers the original ack");
  t.match(await untilAcked(alice, edit, "edit-1"), { seq: 2 }, "and so does another");
  t.same(await events(group), ["1:create", "2:update"], "one seq, one event");
  const row = (await db.query("SELECT body FROM messages WHERE id = $1", [m0.message_id])).rows[0];
  t.equal(row.body, "edited once");
  // The node never published the event it did not know about; the retry's answer does, once.
  t.match(await watcher.next((f) => f.operation === "update", 5_000), { seq: 2, message: { body: "edited once" } }, "the watcher gets the update");
  await watcher.nothingMore(t);

  // A delete retried the same way answers its original ack, not not_found.
  const del = await untilAcked(alice, { operation: "delete", message_id: m0.message_id }, "del-1");
  t.match(await untilAcked(alice, { operation: "delete", message_id: m0.message_id }, "del-1"), { seq: (del as { seq: number }).seq });
  t.same(await events(group), ["1:create", "2:update", "3:delete"]);
});

t.test("on the embedded database (PGlite) a retried update or delete applies once too", async (t) => {
  const node = await startInProcess(t, { DATA_DIR: await tempDir(t), STORE_TIMEOUT_MS: String(STORE_TIMEOUT_MS) });
  const group = uniqueGroup("lite");
  const alice = await connect(t, node.port, group, { user: "alice" });
  const watcher = await connect(t, node.port, group, { user: "w" });
  const m0 = (await alice.request({ operation: "create", type: "text", body: "original" })) as { message_id: string };
  const edit = { operation: "update", message_id: m0.message_id, body: "edited", request_id: "e-1" };
  const del = { operation: "delete", message_id: m0.message_id, request_id: "d-1" };
  const answers: Frame[] = [];
  for (const f of [edit, edit, del, del]) {
    alice.send(f);
    answers.push(await answerTo(alice, f.request_id));
  }
  t.match(answers, [{ operation: "ack", seq: 2 }, { operation: "ack", seq: 2 }, { operation: "ack", seq: 3 }, { operation: "ack", seq: 3 }], "each retry answers its original ack");
  const seqs = [];
  for (let i = 0; i < 3; i++) seqs.push(((await watcher.next((f) => "seq" in f)) as { seq: number }).seq);
  t.same(seqs, [1, 2, 3]);
  await watcher.nothingMore(t);
  const history = (await alice.request({ operation: "history" })) as { messages: { deleted: boolean }[] };
  t.same(history.messages.map((m) => m.deleted), [true], "one message, deleted");
});
