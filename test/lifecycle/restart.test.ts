// Persistence across a restart: what a node stored (messages, edits, tombstones, attachments, the
// group's seq) is all there for the node that replaces it, on PostgreSQL and on embedded PGlite.
import t, { type Test } from "tap";
import { connect, type ChatClient } from "../helpers/client.ts";
import { spawnNode, type Env, type NodeProcess } from "../helpers/node.ts";
import { httpGet, listeningPort, tempDir, untilReady, within } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** A node with `env`, once it listens and is ready (PGlite's first start can be slow on a busy machine). */
async function start(t: Test, env: Env): Promise<NodeProcess> {
  const node = await spawnNode(t, env, { waitListening: false });
  node.port = await listeningPort(node);
  await untilReady(node.port);
  return node;
}

async function stop(node: NodeProcess): Promise<number | string> {
  node.child.kill("SIGTERM");
  return within(node.exited, 15_000, "exit after SIGTERM");
}

async function historyOverWs(c: ChatClient, limit = 100) {
  const h = await c.request({ operation: "history", limit });
  if (h.operation !== "history") throw new Error(`history answered with ${JSON.stringify(h)}`);
  return h;
}

async function historyOverHttp(port: number, group: string) {
  const r = await httpGet(port, `/api/groups/${group}/messages?limit=100`);
  if (!("status" in r) || r.status !== 200) throw new Error(`GET history failed: ${JSON.stringify(r)}`);
  return JSON.parse(r.body) as { messages: Record<string, unknown>[]; has_more: boolean };
}

async function survivesRestart(t: Test, env: Env, kind: "postgresql" | "pglite") {
  const g = "restart-room";
  const first = await start(t, env);
  t.match(first.logs.find((l) => l.msg === "database ready"), { database: kind }, `the node runs on ${kind}`);
  const a = await connect(t, first.port, g, { user: "alice" });

  const plain = await a.request({ operation: "create", type: "text", body: "first" });
  const edited = await a.request({ operation: "create", type: "text", body: "before edit" });
  const withFile = await a.request({ operation: "create", type: "file", body: "notes", file: { name: "notes.txt", content_type: "text/plain", data: b64("file bytes\n") } });
  const doomed = await a.request({ operation: "create", type: "image", body: "gone soon", file: { name: "x.png", content_type: "image/png", data: b64("png!") } });
  const reply = await a.request({ operation: "reply", type: "text", body: "a reply to the doomed one", message_id: doomed.message_id });
  t.match(await a.request({ operation: "update", message_id: edited.message_id, body: "after edit" }), { operation: "ack", seq: 6 });
  t.match(await a.request({ operation: "delete", message_id: doomed.message_id }), { operation: "ack", seq: 7 });
  t.same([plain, edited, withFile, doomed, reply].map((x) => x.seq), [1, 2, 3, 4, 5], "creates numbered 1..5 before the restart");

  const before = await historyOverWs(a);
  t.equal(before.messages.length, 5);
  const fileUrl = before.messages[2]!.file;
  t.match(fileUrl, /^\/files\/.+/);
  const doomedFileUrl = (await a.next((f) => f.operation === "create" && f.message.id === doomed.message_id)) as { message: { file: string } };

  t.equal(await stop(first), 0, "the first node exits 0 on SIGTERM");
  t.match(await a.closed, { code: 1001 }, "its socket was closed as going away");

  const second = await start(t, env);
  const b = await connect(t, second.port, g, { user: "bob" });
  const after = await historyOverWs(b);
  t.same(after, { ...before, request_id: after.request_id }, "WebSocket history after the restart equals history before it");
  t.same(after.has_more, false);
  const byId = new Map(after.messages.map((m) => [m.id, m]));
  t.match(byId.get(plain.message_id as string), { body: "first", updated: null, deleted: false });
  t.match(byId.get(edited.message_id as string), { body: "after edit", updated: String, deleted: false }, "the edit is kept");
  t.match(byId.get(withFile.message_id as string), { body: "notes", file: fileUrl, attachment: { name: "notes.txt", content_type: "text/plain", size: 11 } });
  t.match(byId.get(doomed.message_id as string), { deleted: true, body: null, file: null, attachment: null }, "the deleted message is a tombstone");
  t.match(byId.get(reply.message_id as string), { reply_to: doomed.message_id, body: "a reply to the doomed one" }, "the reply still points at the tombstone");
  t.same(after.messages.map((m) => m.id), [plain, edited, withFile, doomed, reply].map((x) => x.message_id), "oldest first");

  const overHttp = await historyOverHttp(second.port, g);
  t.same(overHttp, { messages: after.messages, has_more: false }, "HTTP history shows the same messages");

  const file = await fetch(`http://127.0.0.1:${second.port}${fileUrl}`);
  t.equal(file.status, 200);
  t.equal(file.headers.get("content-type"), "text/plain");
  t.equal(await file.text(), "file bytes\n", "the file URL still serves the bytes");
  const gone = await fetch(`http://127.0.0.1:${second.port}${doomedFileUrl.message.file}`);
  t.equal(gone.status, 404, "the deleted message's attachment stays gone");
  await gone.arrayBuffer();

  const next = await b.request({ operation: "create", type: "text", body: "after the restart" });
  t.match(next, { operation: "ack", seq: 8 }, "seq continues after the restart");
  t.match(await b.next((f) => f.operation === "create"), { seq: 8, message: { id: next.message_id } });
  t.equal(await stop(second), 0, "the second node exits 0 on SIGTERM too");
}

t.test("on PostgreSQL (DATABASE_URL), history, files and seq survive a restart", async (t) => {
  await survivesRestart(t, { DATABASE_URL: await freshDatabase(t) }, "postgresql");
});

t.test("on embedded PGlite (DATA_DIR, no DATABASE_URL), history, files and seq survive a restart", async (t) => {
  await survivesRestart(t, { DATA_DIR: await tempDir(t, "chat-restart-") }, "pglite");
});
