// The server API on one in-process node at the default limits: off without SERVER_API_KEYS; its
// OpenAPI document is generated from the registered routes and lists exactly them; the request
// body's byte budget is MAX_FRAME_BYTES; an aborted request stores nothing and harms nothing.
import net from "node:net";
import t from "tap";
import { serverApiRoutes } from "../../src/http/server-api/routes.ts";
import { openApiPath } from "../../src/http/server-api/openapi.ts";
import { spawnNode, startInProcess } from "../helpers/node.ts";
import { eventually, uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";
import { privateRedis } from "../helpers/redis-server.ts";

const KEY = "doc-key-0123456789abcdef";
const url = await freshDatabase(t);
const on = await startInProcess(t, { DATABASE_URL: url, SERVER_API_KEYS: KEY });
const off = await startInProcess(t, { DATABASE_URL: url });
const db = await sql(t, url);

const call = (port: number, method: string, path: string, body?: string) =>
  fetch(`http://127.0.0.1:${port}${path}`, { method, body, headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" }, signal: AbortSignal.timeout(20_000) });

t.test("without SERVER_API_KEYS the API does not exist: 404 everywhere under /api/server/", async (t) => {
  for (const [method, path] of [["POST", "/api/server/groups/g/messages"], ["GET", "/api/server/groups/g/messages"], ["POST", "/api/server/users/u/disconnect"], ["GET", "/api/server/openapi.json"]] as const) {
    const r = await call(off.port, method, path, method === "POST" ? "{}" : undefined);
    t.equal(r.status, 404, `${method} ${path}`);
    await r.text();
  }
});

t.test("the OpenAPI 3.1 document lists exactly the registered routes, each answering (not the catch-all 404)", async (t) => {
  const res = await fetch(`http://127.0.0.1:${on.port}/api/server/openapi.json`);
  t.equal(res.status, 200, "served without a key");
  const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { parameters: { name: string; in: string }[]; requestBody?: { content: { "application/json": { schema: { properties: Record<string, unknown>; required: string[] } } } }; responses: Record<string, unknown> }>> };
  t.equal(doc.openapi, "3.1.0");
  const routes = serverApiRoutes({} as never);
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
  const declared = routes.map((r) => `${r.method === "del" ? "DELETE" : r.method.toUpperCase()} ${openApiPath(r.path)}`).sort();
  t.same(documented, declared, "the document and the route table agree");
  for (const op of documented) {
    const [method, template] = op.split(" ") as [string, string];
    const path = template.replace("{group}", uniqueGroup("doc")).replace("{id}", "00000000-0000-0000-0000-000000000000").replace("{user}", "nobody");
    const r = await call(on.port, method, path, method === "POST" ? JSON.stringify({ user: "bot", type: "text", body: "doc probe" }) : undefined);
    const body = (await r.json()) as { code?: string; message?: string };
    t.not(body.message, "no such route", `${op} is registered (${r.status})`);
    t.ok(String(r.status) in doc.paths[template]![method.toLowerCase()]!.responses, `${op}: its status ${r.status} is documented`);
  }
  // Generated from the schemas: the publish body carries the protocol's own rules.
  const publish = doc.paths["/api/server/groups/{group}/messages"]!.post!.requestBody!.content["application/json"].schema;
  t.same(publish.required.sort(), ["type", "user"]);
  t.match(publish.properties, { user: { type: "string", minLength: 1, maxLength: 128 }, type: { enum: ["text", "file", "image"] }, request_id: { maxLength: 64 } });
  const history = doc.paths["/api/server/groups/{group}/messages"]!.get!;
  t.same(history.parameters.map((p) => `${p.in}:${p.name}`), ["path:group", "query:before", "query:limit"]);
});

t.test("at the defaults: a body over MAX_BODY_CHARS (4000) and a request over MAX_FRAME_BYTES (8 MiB) are 413", async (t) => {
  const g = uniqueGroup("doc-limits");
  const path = `/api/server/groups/${g}/messages`;
  const ok = await call(on.port, "POST", path, JSON.stringify({ user: "bot", type: "text", body: "x".repeat(4000) }));
  t.equal(ok.status, 200, "4000 characters are fine");
  await ok.text();
  const long = await call(on.port, "POST", path, JSON.stringify({ user: "bot", type: "text", body: "x".repeat(4001) }));
  t.equal(long.status, 413);
  t.match(await long.json(), { code: "too_large" });
  const huge = await call(on.port, "POST", path, JSON.stringify({ user: "bot", type: "file", file: "A".repeat(8 * 1024 * 1024) }));
  t.equal(huge.status, 413);
  t.match(await huge.json(), { code: "too_large", message: /larger than 8388608 bytes/ });
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM messages WHERE group_name = $1`, [g]);
  t.equal(rows[0].n, 1);
});

t.test("a request aborted halfway through its body stores nothing and the node keeps serving", async (t) => {
  const g = uniqueGroup("doc-abort");
  const body = JSON.stringify({ user: "bot", type: "text", body: "never" });
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(on.port, "127.0.0.1", () => {
      s.write(`POST /api/server/groups/${g}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
      setTimeout(() => {
        s.destroy();
        resolve();
      }, 100);
    });
    s.on("error", reject);
  });
  t.ok(await eventually(async () => (await call(on.port, "GET", `/api/server/groups/${g}/messages`)).status === 200, 2_000), "still serving");
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM messages WHERE group_name = $1`, [g]);
  t.equal(rows[0].n, 0);
});

t.test("with the bus down a disconnect is 503 unavailable, and the node stays up", async (t) => {
  const redis = await privateRedis(t);
  // A process of its own: an in-process node's Redis client would keep retrying after the test.
  const node = await spawnNode(t, { DATABASE_URL: url, REDIS_URL: redis.url, SERVER_API_KEYS: KEY });
  t.equal((await call(node.port, "POST", "/api/server/users/u1/disconnect")).status, 202, "202 while Redis is up");
  await redis.stop("SIGKILL");
  // The node notices the lost connection within a moment (each call before that still publishes).
  let r!: Response;
  t.ok(await eventually(async () => (r = await call(node.port, "POST", "/api/server/users/u1/disconnect")).status === 503, 15_000, 100), "503 once the node knows");
  t.same(await r.json(), { code: "unavailable", message: "event bus unavailable, nothing was sent" });
});

t.test("answers are counted by route and status", async (t) => {
  const text = await (await fetch(`http://127.0.0.1:${on.port}/metrics`)).text();
  t.match(text, /^chat_server_api_requests_total\{route="\/api\/server\/groups\/:group\/messages",status="413"\} 2$/m);
  t.match(text, /^chat_limit_hits_total\{limit="frame_size"\} 1$/m, "the request budget counts as frame_size");
  t.match(text, /^chat_limit_hits_total\{limit="body_length"\} 1$/m);
});
