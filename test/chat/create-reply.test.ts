// create and reply: the contract's message events, acks and every refusal.
import t from "tap";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase, sql } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url, MAX_BODY_CHARS: "20", MAX_FILE_BYTES: "16" });
const db = await sql(t, url);
const b64 = (s: string) => Buffer.from(s).toString("base64");
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

t.test("a create is broadcast to every socket of the group, sender included, then acknowledged", async (t) => {
  const alice = await connect(t, node.port, "room-create", { user: "alice" });
  const bob = await connect(t, node.port, "room-create");
  alice.send({ operation: "create", type: "text", body: "hello", request_id: "c1", group: "ignored-extra-field" });
  const ev = await alice.next((f) => f.operation === "create");
  const ack = await alice.next((f) => f.operation === "ack");
  t.match(ev, { operation: "create", seq: 1, message: { user: "alice", body: "hello", type: "text", file: null, attachment: null, reply_to: null, updated: null, deleted: false } });
  if (ev.operation !== "create") throw new Error("unreachable");
  t.match(ev.message.created, ISO);
  t.same(ack, { operation: "ack", group: "room-create", request_id: "c1", message_id: ev.message.id, seq: 1 });
  t.same(await bob.next(), ev, "bob sees the same event");
  await bob.nothingMore(t);
});

t.test("without request_id a create is broadcast but not acknowledged", async (t) => {
  const a = await connect(t, node.port, "room-noack", { user: "a" });
  a.send({ operation: "create", type: "text", body: "x" });
  t.equal((await a.next()).operation, "create");
  await a.nothingMore(t);
});

t.test("seq counts 1, 2, 3 per group, each group on its own", async (t) => {
  const a = await connect(t, node.port, "seq-a", { user: "u" });
  const b = await connect(t, node.port, "seq-b", { user: "u" });
  const seqs: number[] = [];
  for (let i = 0; i < 3; i++) seqs.push(Number((await a.request({ operation: "create", type: "text", body: `m${i}` })).seq));
  t.same(seqs, [1, 2, 3]);
  t.equal((await b.request({ operation: "create", type: "text", body: "other" })).seq, 1);
});

t.test("files: the seed's base64 string and the {name, content_type, data} form", async (t) => {
  const a = await connect(t, node.port, "room-files", { user: "a" });
  const plain = await a.request({ operation: "create", type: "file", file: b64("raw-bytes") });
  t.equal(plain.operation, "ack");
  const ev1 = await a.next((f) => f.operation === "create");
  if (ev1.operation !== "create") throw new Error("unreachable");
  t.match(ev1.message, { body: "", type: "file", attachment: { name: "file", content_type: "application/octet-stream", size: 9 } });
  t.equal(ev1.message.file, `/files/${ev1.message.attachment!.id}`);
  const res = await fetch(`http://127.0.0.1:${node.port}${ev1.message.file}`);
  t.equal(await res.text(), "raw-bytes");

  await a.request({ operation: "create", type: "image", body: "look", file: { name: "cat.png", content_type: "IMAGE/PNG", data: b64("png") } });
  const ev2 = await a.next((f) => f.operation === "create");
  if (ev2.operation !== "create") throw new Error("unreachable");
  t.match(ev2.message, { body: "look", type: "image", attachment: { name: "cat.png", content_type: "image/png", size: 3 } });
});

t.test("refusals: each gets its error code, echoes request_id, and stores nothing", async (t) => {
  const a = await connect(t, node.port, "room-bad", { user: "a" });
  const before = (await db.query("SELECT count(*)::int AS n FROM messages")).rows[0].n;
  const cases: [string, Record<string, unknown>, string][] = [
    ["text without body", { operation: "create", type: "text" }, "bad_request"],
    ["text with empty body", { operation: "create", type: "text", body: "" }, "bad_request"],
    ["file message without file", { operation: "create", type: "file", body: "x" }, "bad_request"],
    ["unknown type", { operation: "create", type: "video", body: "x" }, "bad_request"],
    ["body not a string", { operation: "create", type: "text", body: 42 }, "bad_request"],
    ["body over MAX_BODY_CHARS", { operation: "create", type: "text", body: "x".repeat(21) }, "too_large"],
    ["invalid base64", { operation: "create", type: "file", file: "@@not base64@@" }, "bad_request"],
    ["file over MAX_FILE_BYTES", { operation: "create", type: "file", file: b64("x".repeat(17)) }, "too_large"],
    ["file object missing data", { operation: "create", type: "file", file: { name: "a", content_type: "text/plain" } }, "bad_request"],
    ["hostile content_type", { operation: "create", type: "file", file: { name: "a", content_type: "text/html\r\nX-Evil: 1", data: b64("x") } }, "bad_request"],
    ["file name with control characters", { operation: "create", type: "file", file: { name: "a\u0000b", content_type: "text/plain", data: b64("x") } }, "bad_request"],
    ["user differs from ?user=", { operation: "create", type: "text", body: "x", user: "mallory" }, "forbidden"],
    ["reply to an unknown message", { operation: "reply", type: "text", body: "x", message_id: "nope" }, "not_found"],
    ["reply without message_id", { operation: "reply", type: "text", body: "x" }, "bad_request"],
    ["reply to a hostile id", { operation: "reply", type: "text", body: "x", message_id: "1' OR '1'='1" }, "bad_request"],
  ];
  for (const [name, frame, code] of cases) {
    const answer = await a.request(frame);
    t.match(answer, { operation: "error", code, request_id: String }, name);
    t.type(answer.message, "string");
  }
  t.equal((await db.query("SELECT count(*)::int AS n FROM messages")).rows[0].n, before, "nothing stored");
  await a.nothingMore(t);
});

t.test("a reply points at a message of the same group", async (t) => {
  const a = await connect(t, node.port, "room-reply", { user: "a" });
  const b = await connect(t, node.port, "room-reply", { user: "b" });
  const other = await connect(t, node.port, "room-reply-other", { user: "a" });
  const original = await a.request({ operation: "create", type: "text", body: "question" });
  const answer = await b.request({ operation: "reply", type: "text", body: "answer", message_id: original.message_id });
  t.match(answer, { operation: "ack", seq: 2 });
  const ev = await a.next((f) => f.operation === "reply");
  t.match(ev, { operation: "reply", seq: 2, message: { id: answer.message_id, user: "b", body: "answer", reply_to: original.message_id } });

  const cross = await other.request({ operation: "reply", type: "text", body: "sneaky", message_id: original.message_id });
  t.match(cross, { operation: "error", code: "not_found" }, "a reply to a message of another group is refused with not_found");

  await a.request({ operation: "delete", message_id: original.message_id });
  const late = await b.request({ operation: "reply", type: "text", body: "too late", message_id: original.message_id });
  t.match(late, { operation: "error", code: "not_found" }, "a reply to a deleted message is not_found");
});
