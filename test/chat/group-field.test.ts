// Every event names its group: every frame about a group (the events, and the ack, error or
// answer of a frame that named one) carries a top-level "group", on per-group sockets too, and a
// payload relayed through Redis reaches the other node byte for byte as its sender's node sent it.
import t from "tap";
import WebSocket from "ws";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis } from "../helpers/services.ts";

await requireRedis();
const url = await freshDatabase(t);
const n1 = await startInProcess(t, { DATABASE_URL: url, REDIS_URL });
const n2 = await startInProcess(t, { DATABASE_URL: url, REDIS_URL });

/** The raw text of every frame a socket receives, in order (to compare bytes across nodes). */
function rawFrames(c: ChatClient): string[] {
  const out: string[] = [];
  c.ws.on("message", (data) => out.push(data.toString()));
  return out;
}

t.test("events, acks, errors, history and resumed carry the group, in their exact shapes", async (t) => {
  const group = uniqueGroup("named");
  const a = await connect(t, n1.port, group, { user: "alice" });
  const b = await connect(t, n2.port, group, { user: "bob" });

  const created = await a.request({ operation: "create", type: "text", body: "hi" });
  t.same(created, { operation: "ack", group, request_id: created.request_id, message_id: created.message_id, seq: 1 }, "create ack");
  const ev = (await b.next((f) => f.operation === "create")) as Frame & { message: { created: string } };
  t.same(ev, {
    operation: "create", seq: 1, group,
    message: { id: created.message_id, user: "alice", body: "hi", type: "text", file: null, attachment: null, reply_to: null, created: ev.message.created, updated: null, deleted: false, seq: 1 },
  }, "create event, relayed from the other node");

  const replied = await b.request({ operation: "reply", type: "text", body: "re", message_id: created.message_id });
  t.same(replied, { operation: "ack", group, request_id: replied.request_id, message_id: replied.message_id, seq: 2 }, "reply ack");
  t.match(await a.next((f) => f.operation === "reply"), { operation: "reply", seq: 2, group, message: { reply_to: created.message_id } });

  const updated = await a.request({ operation: "update", message_id: created.message_id, body: "hi!" });
  t.same(updated, { operation: "ack", group, request_id: updated.request_id, message_id: created.message_id, seq: 3 }, "update ack");
  t.match(await b.next((f) => f.operation === "update"), { operation: "update", seq: 3, group, message: { body: "hi!" } });

  const seen = await b.request({ operation: "seen", message_id: created.message_id });
  t.same(seen, { operation: "ack", group, request_id: seen.request_id, message_id: created.message_id, seen_at: seen.seen_at }, "seen ack");
  t.same(await a.next((f) => f.operation === "seen"), { operation: "seen", group, message_id: created.message_id, user: "bob", seen_at: seen.seen_at }, "seen event");

  const typing = await b.request({ operation: "typing", typing_status: "typing" });
  t.same(typing, { operation: "ack", group, request_id: typing.request_id }, "typing ack");
  t.same(await a.next((f) => f.operation === "typing"), { operation: "typing", group, user: "bob", typing_status: "typing" }, "typing event");

  const deleted = await b.request({ operation: "delete", message_id: replied.message_id });
  t.same(deleted, { operation: "ack", group, request_id: deleted.request_id, message_id: replied.message_id, seq: 4 }, "delete ack");
  t.same(await a.next((f) => f.operation === "delete"), { operation: "delete", seq: 4, group, message_id: replied.message_id, user: "bob", message_seq: 2, author: "bob" }, "delete event");

  const page = await a.request({ operation: "history", limit: 10 });
  t.match(page, { operation: "history", group, request_id: page.request_id, has_more: false }, "history answer");
  t.equal((page as { messages: unknown[] }).messages.length, 2);

  const missing = await a.request({ operation: "delete", message_id: "nope" });
  t.same(missing, { operation: "error", group, code: "not_found", message: missing.message, request_id: missing.request_id }, "error of a frame");
  const bad = await a.request({ operation: "create", type: "bogus" });
  t.same(bad, { operation: "error", group, code: "bad_request", message: "type: type must be one of text, file, image", request_id: bad.request_id }, "a bad frame's error");
  a.ws.send(Buffer.from("x"), { binary: true });
  t.match(await a.next((f) => f.operation === "error"), { operation: "error", group, code: "bad_request" }, "a binary frame's refusal");

  const r = await connect(t, n2.port, group, { user: "carol", since: "3" });
  t.match(await r.next(), { operation: "delete", seq: 4, group }, "replayed events");
  t.same(await r.next(), { operation: "resumed", group, seq: 4 }, "resumed");
  const ahead = await connect(t, n1.port, group, { user: "carol", since: "9" });
  t.same(await ahead.next(), { operation: "error", group, code: "bad_request", message: "since 9 is beyond the group's last seq 4" }, "since beyond the last seq");
});

t.test("a payload is serialised once and relayed untouched: both nodes' sockets get the same bytes", async (t) => {
  const group = uniqueGroup("bytes");
  const a = await connect(t, n1.port, group, { user: "alice" });
  const b = await connect(t, n2.port, group, { user: "bob" });
  const onA = rawFrames(a);
  const onB = rawFrames(b);
  await a.request({ operation: "create", type: "text", body: "one" });
  await a.request({ operation: "typing", typing_status: "typing" });
  await b.next((f) => f.operation === "typing");
  await a.next((f) => f.operation === "typing");
  // Group events only (presence's join/leave depend on which socket opened first).
  const events = (frames: string[]) => frames.filter((f) => /^\{"operation":"(create|typing)"/.test(f));
  t.same(events(onB), events(onA), "identical bytes on both nodes");
  t.match(events(onA)[0], new RegExp(`^\\{"operation":"create","seq":1,"group":"${group}",`), "seq stays in the head, group follows");
  t.equal(events(onA)[1], `{"operation":"typing","group":"${group}","user":"alice","typing_status":"typing"}`);
});

t.test("a frame refused before it is parsed still names the socket's group", async (t) => {
  const group = uniqueGroup("refused");
  const a = await connect(t, n1.port, group, { user: "alice" });
  a.send("not json");
  t.same(await a.next(), { operation: "error", group, code: "bad_request", message: "frame is not valid JSON" });
  t.equal(a.ws.readyState, WebSocket.OPEN, "the socket stays open");
});
