// update and delete: only the author, only live messages of the group, and a delete that
// leaves a tombstone with no body or attachment anywhere.
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url, MAX_BODY_CHARS: "50" });
const db = await sql(t, url);
const b64 = (s: string) => Buffer.from(s).toString("base64");
const get = (path: string) => fetch(`http://127.0.0.1:${node.port}${path}`);

t.test("the author updates a message: broadcast with the new body, updated set, next seq", async (t) => {
  const a = await connect(t, node.port, "upd", { user: "alice" });
  const watcher = await connect(t, node.port, "upd", { user: "bob" });
  const created = await a.request({ operation: "create", type: "text", body: "first" });
  const ack = await a.request({ operation: "update", message_id: created.message_id, body: "second" });
  t.same(ack, { operation: "ack", group: "upd", request_id: ack.request_id, message_id: created.message_id, seq: 2 });
  await watcher.next((f) => f.operation === "create");
  const ev = await watcher.next((f) => f.operation === "update");
  if (ev.operation !== "update") throw new Error("unreachable");
  t.match(ev, { seq: 2, message: { id: created.message_id, body: "second", user: "alice", deleted: false } });
  t.ok(ev.message.updated && ev.message.updated >= ev.message.created, "updated is set, not before created");
});

t.test("update: file absent keeps the attachment, null removes it, a new one replaces it", async (t) => {
  const a = await connect(t, node.port, "upd-file", { user: "alice" });
  const c = await a.request({ operation: "create", type: "text", body: "with file", file: { name: "a.txt", content_type: "text/plain", data: b64("one") } });
  const first = await a.next((f) => f.operation === "create");
  if (first.operation !== "create") throw new Error("unreachable");
  const oldUrl = first.message.file!;

  await a.request({ operation: "update", message_id: c.message_id, body: "kept" });
  const kept = await a.next((f) => f.operation === "update");
  if (kept.operation !== "update") throw new Error("unreachable");
  t.equal(kept.message.file, oldUrl, "absent file keeps the attachment");

  await a.request({ operation: "update", message_id: c.message_id, body: "replaced", file: { name: "b.txt", content_type: "text/plain", data: b64("two") } });
  const replaced = await a.next((f) => f.operation === "update");
  if (replaced.operation !== "update") throw new Error("unreachable");
  t.not(replaced.message.file, oldUrl);
  t.equal(await (await get(replaced.message.file!)).text(), "two");
  t.equal((await get(oldUrl)).status, 404, "the replaced attachment is gone");

  await a.request({ operation: "update", message_id: c.message_id, body: "no file", file: null });
  const removed = await a.next((f) => f.operation === "update");
  if (removed.operation !== "update") throw new Error("unreachable");
  t.same([removed.message.file, removed.message.attachment], [null, null], "null removes the attachment");
  t.equal((await get(replaced.message.file!)).status, 404);

  const f = await a.request({ operation: "create", type: "file", file: b64("bytes") });
  const noFile = await a.request({ operation: "update", message_id: f.message_id, body: "", file: null });
  t.match(noFile, { operation: "error", code: "bad_request" }, "a file message cannot lose its file");
});

t.test("only the author may update or delete", async (t) => {
  const a = await connect(t, node.port, "authz", { user: "alice" });
  const m = await connect(t, node.port, "authz", { user: "mallory" });
  const c = await a.request({ operation: "create", type: "text", body: "mine" });
  t.match(await m.request({ operation: "update", message_id: c.message_id, body: "hacked" }), { operation: "error", code: "forbidden" });
  t.match(await m.request({ operation: "delete", message_id: c.message_id }), { operation: "error", code: "forbidden" });
  const row = (await db.query("SELECT body, deleted FROM messages WHERE id = $1", [c.message_id])).rows[0];
  t.same(row, { body: "mine", deleted: false }, "nothing changed");
  const seq = (await db.query(`SELECT last_seq FROM groups WHERE name = 'authz'`)).rows[0].last_seq;
  t.equal(seq, 1, "refused operations take no seq");
});

t.test("unknown, foreign and deleted messages are not_found; bad input is refused", async (t) => {
  const a = await connect(t, node.port, "nf", { user: "alice" });
  const elsewhere = await connect(t, node.port, "nf-other", { user: "alice" });
  const c = await elsewhere.request({ operation: "create", type: "text", body: "other group" });
  for (const op of ["update", "delete", "seen"]) {
    t.match(await a.request({ operation: op, message_id: "unknown-id", body: "x" }), { code: "not_found" }, `${op} of an unknown id`);
    t.match(await a.request({ operation: op, message_id: c.message_id, body: "x" }), { code: "not_found" }, `${op} of another group's message`);
  }
  const mine = await a.request({ operation: "create", type: "text", body: "bye" });
  await a.request({ operation: "delete", message_id: mine.message_id });
  for (const op of ["update", "delete", "seen"]) {
    t.match(await a.request({ operation: op, message_id: mine.message_id, body: "x" }), { code: "not_found" }, `${op} of a deleted message`);
  }
  t.match(await a.request({ operation: "update", message_id: mine.message_id }), { code: "bad_request" }, "update without body");
  t.match(await a.request({ operation: "update", message_id: c.message_id, body: "x".repeat(51) }), { code: "too_large" });
  t.match(await a.request({ operation: "delete" }), { code: "bad_request" }, "delete without message_id");
});

t.test("a delete leaves a tombstone: body and attachment gone from history, files and later events", async (t) => {
  const a = await connect(t, node.port, "del", { user: "alice" });
  const b = await connect(t, node.port, "del", { user: "bob" });
  const c = await a.request({ operation: "create", type: "image", body: "secret", file: { name: "p.png", content_type: "image/png", data: b64("img") } });
  const r = await b.request({ operation: "reply", type: "text", body: "nice", message_id: c.message_id });
  const created = await b.next((f) => f.operation === "create");
  if (created.operation !== "create") throw new Error("unreachable");
  const ack = await a.request({ operation: "delete", message_id: c.message_id });
  t.same(ack, { operation: "ack", group: "del", request_id: ack.request_id, message_id: c.message_id, seq: 3 });
  const ev = await b.next((f) => f.operation === "delete");
  t.same(ev, { operation: "delete", seq: 3, group: "del", message_id: c.message_id, user: "alice", message_seq: 1, author: "alice" }, "the deleted message's seq and author come with it");

  t.equal((await get(created.message.file!)).status, 404, "the attachment is no longer served");
  const h = await b.request({ operation: "history" });
  if (h.operation !== "history") throw new Error("unreachable");
  t.match(h.messages[0], { id: c.message_id, deleted: true, body: null, file: null, attachment: null, type: "image" });
  t.match(h.messages[1], { id: r.message_id, reply_to: c.message_id, body: "nice" }, "the reply keeps its reply_to");
  const row = (await db.query("SELECT body, attachment_id FROM messages WHERE id = $1", [c.message_id])).rows[0];
  t.same(row, { body: null, attachment_id: null }, "the body is gone from the database too");
  t.equal((await db.query(`SELECT count(*)::int AS n FROM attachments WHERE group_name = 'del'`)).rows[0].n, 0);
  t.notMatch(JSON.stringify(b.received), /secret/, "no later frame carries the deleted body");
});
