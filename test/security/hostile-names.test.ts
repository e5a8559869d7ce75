// Hostile names and ids (path traversal, SQL-looking strings, control characters, look-alikes)
// are refused by the protocol's schemas wherever they enter: the group in the WebSocket and
// history paths, message ids in frames and queries, file ids, user ids, file names and types.
// Strings the contract does allow (a user id may look like SQL) are opaque text: stored and
// shown exactly, never interpreted.
import http from "node:http";
import t from "tap";
import * as v from "valibot";
import { connect, upgradeStatus, wsUrl } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { freshDatabase, sql } from "../helpers/services.ts";
import { ContentType, EntityId, FileName, GroupName, UserId } from "../../src/protocol/index.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
const db = await sql(t, url);

const PATH_TRAVERSAL = ["../etc/passwd", "..\\..\\windows\\win.ini", "a/../../b", "/etc/passwd", "..%2F..%2Fetc", "%2e%2e%2f", "~/.ssh/id_rsa", "a/b"];
const SQL_LOOKING = ["'; DROP TABLE messages; --", "' OR '1'='1", "1; SELECT pg_sleep(10)", '" OR 1=1 --', "x' UNION SELECT * FROM attachments --", "$$;$$", "a--b;"];
const CONTROL = ["a\u0000b", "line\nbreak", "car\rriage", "tab\tbed", "\u001b[31mred", "del\u007f", "\u0085next-line"];
const ODD = ["", " ", "x".repeat(100), "spa ce", "café", "\u0430dmin" /* Cyrillic a */, "emoji😀", "<script>", "a\u202Eb" /* RTL override */, "\u2028"];

/** A test-name-safe rendering: everything outside printable ASCII escaped. */
const show = (s: string) => JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** GET on a raw path (no URL normalisation of dot segments, unlike fetch and ws). */
function rawGet(path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port: node.port, path, headers, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
  });
}
const upgradeHeaders = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" };

for (const [kind, names] of [["path traversal", PATH_TRAVERSAL], ["SQL-looking", SQL_LOOKING], ["control characters", CONTROL], ["odd", ODD]] as const) {
  t.test(`group names: ${kind} strings are refused by the schema, at the upgrade (400) and by the history route (400)`, async (t) => {
    for (const name of names) {
      const label = show(name);
      t.notOk(v.is(GroupName, name), `${label}: schema`);
      const path = encodeURIComponent(name);
      if (name !== "") t.equal(await rawGet(`/ws/chat/${path}/`, upgradeHeaders), 400, `${label}: upgrade`);
      if (name !== "") t.equal(await rawGet(`/api/groups/${path}/messages`), 400, `${label}: history`);
    }
  });

  t.test(`message and file ids: ${kind} strings are refused by the schema, in every frame (bad_request) and as file ids (404)`, async (t) => {
    const c = await connect(t, node.port, `ids-${kind.replace(/\W/g, "")}`, { user: "u" });
    for (const id of names) {
      const label = show(id);
      t.notOk(v.is(EntityId, id), `${label}: schema`);
      for (const frame of [
        { operation: "update", message_id: id, body: "x" },
        { operation: "delete", message_id: id },
        { operation: "seen", message_id: id },
        { operation: "reply", message_id: id, type: "text", body: "x" },
        { operation: "history", before: id },
      ]) {
        t.match(await c.request(frame), { operation: "error", code: "bad_request" }, `${label}: ${frame.operation}`);
      }
      if (id !== "" && !id.includes("/")) t.equal(await rawGet(`/files/${encodeURIComponent(id)}`), 404, `${label}: file id`);
      t.equal(await rawGet(`/api/groups/ok/messages?before=${encodeURIComponent(id)}`), 400, `${label}: ?before=`);
    }
  });
}

t.test("user ids: control characters, bidi overrides and over-long ones are refused (400 at the upgrade, bad_request in a frame)", async (t) => {
  const bad = [...CONTROL, "", "a\u202Eb", "a\u2066b", "\ud800", "x".repeat(129)];
  const c = await connect(t, node.port, "users");
  for (const user of bad) {
    const label = show(user);
    t.notOk(v.is(UserId, user), `${label}: schema`);
    if (user !== "" && user !== "\ud800") t.equal(await upgradeStatus(wsUrl(node.port, "users", { user })), 400, `${label}: ?user=`);
    t.match(await c.request({ operation: "create", type: "text", body: "x", user }), { operation: "error", code: "bad_request" }, `${label}: frame user`);
  }
});

t.test("file names and content types: control characters and non-MIME types are refused", async (t) => {
  const c = await connect(t, node.port, "files", { user: "u" });
  const data = Buffer.from("x").toString("base64");
  for (const name of [...CONTROL, "", "x".repeat(256)]) {
    t.notOk(v.is(FileName, name), `${show(name)}: schema`);
    t.match(await c.request({ operation: "create", type: "file", file: { name, content_type: "text/plain", data } }), { code: "bad_request" }, `name ${show(name)}`);
  }
  for (const type of ["text/html; charset=utf-8", "../../etc/passwd", "text", "text/plain\r\nX-Injected: 1", "'; DROP TABLE attachments; --", "*/*", "image/png ", "a/b/c"]) {
    t.notOk(v.is(ContentType, type), `${show(type)}: schema`);
    t.match(await c.request({ operation: "create", type: "file", file: { name: "a", content_type: type, data } }), { code: "bad_request" }, `type ${show(type)}`);
  }
});

t.test("what the contract allows is opaque text: SQL-looking users, names and bodies are stored and shown exactly", async (t) => {
  const tables = async () => (await db.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'")).rows[0].n;
  const before = await tables();
  const user = "Robert'); DROP TABLE messages;--";
  const c = await connect(t, node.port, "bobby", { user });
  const body = "' OR 1=1; -- <script>alert(1)</script> ../../etc/passwd";
  await c.request({ operation: "create", type: "file", body, file: { name: "x'; DELETE FROM attachments; --.txt", content_type: "text/plain", data: "eA==" } });
  const ev = await c.next((f) => f.operation === "create");
  t.match(ev, { message: { user, body, attachment: { name: "x'; DELETE FROM attachments; --.txt" } } }, "round-trips exactly");
  t.equal(await tables(), before, "no table was dropped");
  t.equal((await db.query("SELECT count(*)::int AS n FROM messages WHERE user_id = $1 AND body = $2", [user, body])).rows[0].n, 1, "stored verbatim");
});

t.test("dot-only group names follow the contract's rule and are just names", async (t) => {
  // `.` and `..` are 1 to 99 of A-Z a-z 0-9 - _ . (the Django Channels rule). Group names never
  // reach a file system, only SQL parameters and the Redis channel `chat:<name>`.
  t.ok(v.is(GroupName, "..") && v.is(GroupName, "."));
  // ws (like browsers) normalises the segment away: /ws/chat/%2E%2E/ becomes /ws/, the multiplexed
  // endpoint, which follows no group until a subscribe names one.
  const normalised = await connect(t, node.port, "%2E%2E", { user: "u" });
  t.match(await normalised.request({ operation: "create", type: "text", body: "x" }), { operation: "error", code: "bad_request", message: /names its group/ }, "ws (like browsers) normalises the segment away: the /ws/ endpoint, in no group");
  t.equal(await rawGet("/ws/chat/%2E%2E/", upgradeHeaders), 101, "a raw client gets the group literally named '..'");
  const res = await new Promise<string>((resolve) => http.get({ host: "127.0.0.1", port: node.port, path: "/api/groups/%2E%2E/messages" }, (r) => {
    let body = "";
    r.on("data", (d) => (body += d)).on("end", () => resolve(body));
  }));
  t.same(JSON.parse(res), { messages: [], has_more: false }, "an empty group like any other");
});

t.test("U+0000, which PostgreSQL text cannot hold, is refused in a body and a request_id (it used to be an internal error)", async (t) => {
  const c = await connect(t, node.port, "nul", { user: "u" });
  t.match(await c.request({ operation: "create", type: "text", body: "a\u0000b" }), { operation: "error", code: "bad_request", message: /U\+0000/ });
  t.match(await c.request({ operation: "update", message_id: "m1", body: "\u0000" }), { operation: "error", code: "bad_request" });
  c.send({ operation: "create", type: "text", body: "ok", request_id: "r\u0000" });
  t.match(await c.next((f) => f.operation === "error"), { code: "bad_request", message: /request_id/ }, "an ill-formed request_id, so not echoed");
  t.match(await c.request({ operation: "create", type: "text", body: "fine" }), { operation: "ack" }, "the socket still works");
});
