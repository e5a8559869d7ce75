// The server API end to end on two node processes sharing PostgreSQL and Redis, with real
// sockets watching: a publish is stored and broadcast once, a retry with the same request_id
// stores once (on either node), keys are checked, every error has its code and status, a
// moderator deletes any message, and a disconnect closes a user's sockets on every node.
import t from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { spawnNode, type NodeProcess } from "../helpers/node.ts";
import { eventually, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis, sql } from "../helpers/services.ts";

const KEY_OLD = "old-key-0123456789abcdef";
const KEY_NEW = "new-key-0123456789abcdef";

let nodes: NodeProcess[] = [];
let db!: Awaited<ReturnType<typeof sql>>;
t.before(async () => {
  await requireRedis();
  const url = await freshDatabase(t);
  nodes = await Promise.all([0, 1].map(() => spawnNode(t, { DATABASE_URL: url, REDIS_URL, SERVER_API_KEYS: `${KEY_OLD}, ${KEY_NEW}`, MAX_BODY_CHARS: "100", MAX_FRAME_BYTES: "65536" })));
  await Promise.all(nodes.map((n) => untilReady(n.port)));
  db = await sql(t, url);
});

async function api(node: NodeProcess, method: string, path: string, body?: unknown, key: string | null = KEY_NEW, raw?: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`http://127.0.0.1:${node.port}${path}`, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

const creates = (f: Frame) => f.operation === "create";

t.test("a published message is stored and reaches sockets on both nodes once; a retry on the other node stores nothing new", async (t) => {
  const g = uniqueGroup("api-pub");
  const watchers: ChatClient[] = await Promise.all(nodes.map((n, i) => connect(t, n.port, g, { user: `w${i}` })));
  const first = await api(nodes[0]!, "POST", `/api/server/groups/${g}/messages`, { user: "bot", type: "text", body: "hello from the backend", request_id: "job-1" });
  t.equal(first.status, 200);
  t.match(first.json, { message_id: String, seq: 1 });
  for (const w of watchers) {
    const ev = await w.next(creates);
    t.match(ev, { operation: "create", seq: 1, message: { id: first.json.message_id, user: "bot", body: "hello from the backend", type: "text" } });
  }
  const retries = await Promise.all([api(nodes[1]!, "POST", `/api/server/groups/${g}/messages`, { user: "bot", type: "text", body: "hello from the backend", request_id: "job-1" }, KEY_OLD), api(nodes[0]!, "POST", `/api/server/groups/${g}/messages`, { user: "bot", type: "text", body: "hello from the backend", request_id: "job-1" })]);
  for (const r of retries) t.same(r, first, "a retry answers the original");
  // A socket create with the same request_id by the same user is the same message too.
  const socket = await connect(t, nodes[1]!.port, g, { user: "bot" });
  t.match(await socket.request({ operation: "create", type: "text", body: "x" }), { seq: 2 }, "the next message gets seq 2: the retries took none");
  for (const w of watchers) {
    t.match(await w.next(creates), { seq: 2 }, "the next event is seq 2: no retry was broadcast");
    await w.nothingMore(t, 200);
  }
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM messages WHERE group_name = $1`, [g]);
  t.equal(rows[0].n, 2);
});

t.test("files and images are published like a create frame", async (t) => {
  const g = uniqueGroup("api-file");
  const w = await connect(t, nodes[1]!.port, g, { user: "w" });
  const r = await api(nodes[0]!, "POST", `/api/server/groups/${g}/messages`, { user: "bot", type: "image", file: { name: "a.png", content_type: "image/png", data: Buffer.from("PNG").toString("base64") } });
  t.equal(r.status, 200);
  const ev = await w.next(creates);
  t.match(ev, { message: { type: "image", attachment: { name: "a.png", content_type: "image/png", size: 3 } } });
});

t.test("API keys: none, a wrong one, a non-Bearer scheme are 401; either configured key works (rotation)", async (t) => {
  const g = uniqueGroup("api-keys");
  const path = `/api/server/groups/${g}/messages`;
  for (const key of [null, "wrong-key-0123456789abcdef", KEY_NEW.slice(0, -1), `${KEY_NEW}x`, ""]) {
    const r = await api(nodes[0]!, "GET", path, undefined, key);
    t.equal(r.status, 401, `key ${JSON.stringify(key)}`);
    t.same(r.json, { code: "unauthorized", message: "a valid API key is required: Authorization: Bearer <key>" });
  }
  const basic = await fetch(`http://127.0.0.1:${nodes[0]!.port}${path}`, { headers: { authorization: `Basic ${KEY_NEW}` } });
  t.equal(basic.status, 401);
  await basic.text();
  const post = await api(nodes[0]!, "POST", path, { user: "bot", type: "text", body: "x" }, "wrong-key-0123456789abcdef");
  t.equal(post.status, 401, "a publish with a bad key");
  t.equal((await api(nodes[0]!, "GET", path)).status, 200, "new key");
  t.equal((await api(nodes[1]!, "GET", path, undefined, KEY_OLD)).status, 200, "old key");
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM messages WHERE group_name = $1`, [g]);
  t.equal(rows[0].n, 0, "nothing was stored by a refused request");
});

t.test("every error the API can answer has its code and matching status, and changes nothing", async (t) => {
  const g = uniqueGroup("api-errors");
  const path = `/api/server/groups/${g}/messages`;
  const cases: [string, Promise<{ status: number; json: { code: string; message: string } }>, number, string, RegExp][] = [
    ["bad JSON", api(nodes[0]!, "POST", path, undefined, KEY_NEW, "{nope"), 400, "bad_request", /not valid JSON/],
    ["not an object", api(nodes[0]!, "POST", path, [1]), 400, "bad_request", /JSON object/],
    ["no user", api(nodes[0]!, "POST", path, { type: "text", body: "x" }), 400, "bad_request", /user/],
    ["bad type", api(nodes[0]!, "POST", path, { user: "u", type: "video", body: "x" }), 400, "bad_request", /type must be one of/],
    ["empty text", api(nodes[0]!, "POST", path, { user: "u", type: "text", body: "" }), 400, "bad_request", /non-empty body/],
    ["control characters in user", api(nodes[0]!, "POST", path, { user: "a\u0007b", type: "text", body: "x" }), 400, "bad_request", /control characters/],
    ["bad request_id", api(nodes[0]!, "POST", path, { user: "u", type: "text", body: "x", request_id: "x".repeat(65) }), 400, "bad_request", /request_id/],
    ["bad base64", api(nodes[0]!, "POST", path, { user: "u", type: "file", file: "!!!" }), 400, "bad_request", /base64/],
    ["bad group", api(nodes[0]!, "POST", `/api/server/groups/bad%20group/messages`, { user: "u", type: "text", body: "x" }), 400, "bad_request", /path group/],
    ["bad history limit", api(nodes[0]!, "GET", `${path}?limit=500`), 400, "bad_request", /limit/],
    ["bad message id", api(nodes[0]!, "DELETE", `${path}/bad$id`), 400, "bad_request", /path id/],
    ["body over MAX_BODY_CHARS", api(nodes[0]!, "POST", path, { user: "u", type: "text", body: "x".repeat(101) }), 413, "too_large", /longer than 100/],
    ["request over MAX_FRAME_BYTES", api(nodes[0]!, "POST", path, { user: "u", type: "file", file: "A".repeat(70_000) }), 413, "too_large", /larger than 65536 bytes/],
    ["unknown message", api(nodes[0]!, "DELETE", `${path}/00000000-0000-0000-0000-000000000000`), 404, "not_found", /not found/],
    ["history before an unknown message", api(nodes[0]!, "GET", `${path}?before=nope`), 404, "not_found", /not found/],
    ["unknown route", api(nodes[0]!, "GET", `/api/server/nope`), 404, "not_found", /no such route/],
  ];
  for (const [what, p, status, code, message] of cases) {
    const r = await p;
    t.equal(r.status, status, what);
    t.equal(r.json.code, code, what);
    t.match(r.json.message, message, what);
  }
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM groups WHERE name = $1`, [g]);
  t.equal(rows[0].n, 0, "no refused request created the group");
});

t.test("a moderator deletes anyone's message; sockets on both nodes see the delete", async (t) => {
  const g = uniqueGroup("api-del");
  const alice = await connect(t, nodes[0]!.port, g, { user: "alice" });
  const watcher = await connect(t, nodes[1]!.port, g, { user: "w" });
  const ack = await alice.request({ operation: "create", type: "text", body: "spam" });
  const r = await api(nodes[1]!, "DELETE", `/api/server/groups/${g}/messages/${ack.message_id}?user=mod`);
  t.equal(r.status, 200);
  t.same(r.json, { message_id: ack.message_id, seq: 2 });
  for (const c of [alice, watcher]) t.match(await c.next((f) => f.operation === "delete"), { operation: "delete", seq: 2, message_id: ack.message_id, user: "mod", message_seq: 1, author: "alice" }, "the delete names the moderator and the author");
  const again = await api(nodes[0]!, "DELETE", `/api/server/groups/${g}/messages/${ack.message_id}`);
  t.equal(again.status, 404, "a deleted message is not_found");
  const hist = await api(nodes[0]!, "GET", `/api/server/groups/${g}/messages?limit=10`);
  t.equal(hist.status, 200);
  t.match(hist.json, { has_more: false, messages: [{ id: ack.message_id, deleted: true, body: null }] });
});

t.test("history pages like the WebSocket history", async (t) => {
  const g = uniqueGroup("api-hist");
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await api(nodes[i % 2]!, "POST", `/api/server/groups/${g}/messages`, { user: "bot", type: "text", body: `m${i}` })).json.message_id);
  const page = await api(nodes[1]!, "GET", `/api/server/groups/${g}/messages?limit=2&before=${ids[3]}`);
  t.same(page.json.messages.map((m: { body: string }) => m.body), ["m1", "m2"]);
  t.equal(page.json.has_more, true);
  const empty = await api(nodes[0]!, "GET", `/api/server/groups/${uniqueGroup("none")}/messages`);
  t.same(empty.json, { messages: [], has_more: false });
});

t.test("a disconnect closes the user's sockets on every node with 4010, and no one else's", async (t) => {
  const g = uniqueGroup("api-kick");
  const mallory = await Promise.all([connect(t, nodes[0]!.port, g, { user: "mallory" }), connect(t, nodes[1]!.port, uniqueGroup("api-kick2"), { user: "mallory" })]);
  const bob = await connect(t, nodes[1]!.port, g, { user: "bob" });
  const r = await api(nodes[0]!, "POST", `/api/server/users/mallory/disconnect`);
  t.equal(r.status, 202);
  t.same(r.json, { user: "mallory", published: true });
  for (const m of mallory) {
    const closed = await Promise.race([m.closed, new Promise((r) => setTimeout(() => r("still open"), 5_000))]);
    t.match(closed, { code: 4010 }, "closed with 4010");
  }
  t.match(await bob.request({ operation: "typing", typing_status: "typing" }), { operation: "ack" }, "bob's socket is still open");
  const odd = await api(nodes[1]!, "POST", `/api/server/users/${encodeURIComponent("a b/é")}/disconnect`);
  t.equal(odd.status, 202, "user ids are percent-decoded");
  t.equal(odd.json.user, "a b/é");
});

t.test("presence lists the users online in a group on either node", async (t) => {
  const g = uniqueGroup("api-presence");
  await connect(t, nodes[0]!.port, g, { user: "alice" });
  await connect(t, nodes[1]!.port, g, { user: "bob" });
  let last: unknown;
  const both = await eventually(async () => {
    const r = await api(nodes[1]!, "GET", `/api/server/groups/${g}/presence`);
    last = r;
    return r.status === 200 && r.json.count === 2;
  }, 10_000, 50);
  t.ok(both, `both users present: ${JSON.stringify(last)}`);
  const r = await api(nodes[0]!, "GET", `/api/server/groups/${g}/presence`);
  t.match(r.json, { group: g, count: 2 });
  t.same(r.json.users.map((u: { user: string }) => u.user).sort(), ["alice", "bob"]);
  t.same(await api(nodes[0]!, "GET", `/api/server/groups/${uniqueGroup("empty")}/presence`).then((x) => x.json.count), 0);
});
