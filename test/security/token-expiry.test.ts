// Sessions do not outlive their tokens: a socket is closed with 4001 ("token expired") at the
// token's exp plus JWT_CLOCK_TOLERANCE_S, and nothing it sends after that acts. Checked at the
// default tolerance (30 s) and a small one, against a real node process.
import { SignJWT } from "jose";
import t from "tap";
import WebSocket from "ws";
import { ChatClient, wsUrl } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup, within } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { loadConfig } from "../../src/config/env.ts";
import { CLOSE_TOKEN_EXPIRED } from "../../src/protocol/index.ts";

const SECRET = "test-secret-that-is-at-least-32-bytes-long";
const DEFAULT_TOLERANCE_S = loadConfig({}).JWT_CLOCK_TOLERANCE_S;
const db = await freshDatabase(t);
const [byDefault, small] = await Promise.all([
  spawnNode(t, { DATABASE_URL: db, JWT_SECRET: SECRET }),
  spawnNode(t, { DATABASE_URL: db, JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE_S: "1" }),
]);

const sign = (sub: string, exp: number) => new SignJWT({ sub }).setProtectedHeader({ alg: "HS256" }).setExpirationTime(exp).sign(new TextEncoder().encode(SECRET));

async function open(port: number, group: string, token: string): Promise<ChatClient> {
  const ws = new WebSocket(wsUrl(port, group), { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
  t.teardown(() => ws.terminate());
  const c = new ChatClient(ws);
  await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
  return c;
}

t.test("a socket is closed with 4001 when its token expires", async (t) => {
  const group = uniqueGroup("exp");
  // Small tolerance: the token expires 3 s from now; the socket may live until exp + 1 s.
  const exp = Math.floor(Date.now() / 1000) + 3;
  const c = await open(small.port, group, await sign("alice", exp));
  t.match(await c.request({ operation: "create", type: "text", body: "before exp" }), { operation: "ack" }, "usable before exp");
  const closed = await within(c.closed, 10_000, "the close at exp");
  const at = Date.now();
  t.equal(closed.code, CLOSE_TOKEN_EXPIRED, "closed with 4001");
  t.equal(closed.reason, "token expired");
  t.ok(at >= (exp + 1) * 1000 - 50, `not before exp + JWT_CLOCK_TOLERANCE_S (${at - (exp + 1) * 1000} ms after)`);
  t.ok(at <= (exp + 1) * 1000 + 3_000, "and promptly after it");
  t.equal(await metric(small.port, "chat_token_expiries_total"), 1, "counted");
});

t.test("at the default tolerance the socket lives until exp + JWT_CLOCK_TOLERANCE_S, and no later", async (t) => {
  const group = uniqueGroup("exp-default");
  // Expired 27 s ago: still accepted (30 s of tolerance), and closed 3 s from now.
  const exp = Math.floor(Date.now() / 1000) - (DEFAULT_TOLERANCE_S - 3);
  const c = await open(byDefault.port, group, await sign("bob", exp));
  t.match(await c.request({ operation: "create", type: "text", body: "within tolerance" }), { operation: "ack" }, "accepted within the tolerance");
  const closed = await within(c.closed, 10_000, "the close at exp + tolerance");
  const at = Date.now();
  t.equal(closed.code, CLOSE_TOKEN_EXPIRED);
  t.ok(at >= (exp + DEFAULT_TOLERANCE_S) * 1000 - 50 && at <= (exp + DEFAULT_TOLERANCE_S) * 1000 + 3_000, `closed ${at - (exp + DEFAULT_TOLERANCE_S) * 1000} ms after exp + ${DEFAULT_TOLERANCE_S} s`);
  // The fresh token the client would fetch works, and resumes where it was.
  const again = await open(byDefault.port, group, await sign("bob", Math.floor(Date.now() / 1000) + 300));
  again.send({ operation: "create", type: "text", body: "with a fresh token", request_id: "fresh-1" });
  t.match(await again.next((f) => f.operation === "ack"), { operation: "ack", request_id: "fresh-1", seq: 2 }, "a fresh token carries on");
  t.ok(await eventually(async () => (await metric(byDefault.port, "chat_token_expiries_total")) === 1), "counted");
  t.equal(byDefault.child.exitCode, null);
});
