// JWT mode, with real tokens made here: a valid token's `sub` is the user; every bad token is
// refused with 401 before the upgrade (and before the group is joined), a `groups` claim that
// does not list the group with 403; the HTTP history and file routes apply the same rules.
// HS256 secret, PEM public key (RS256) and JWKS (ES256) are each checked, as are the origin
// list, the production refusal and the open-mode warning.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type JWTPayload } from "jose";
import t, { type Test } from "tap";
import WebSocket from "ws";
import { ChatClient, upgradeStatus, wsUrl } from "../helpers/client.ts";
import { spawnNode, startInProcess } from "../helpers/node.ts";
import { metric, tempDir, within } from "../helpers/probe.ts";
import { checkStartup, loadConfig } from "../../src/config/env.ts";
import { freshDatabase } from "../helpers/services.ts";

const SECRET = "test-secret-that-is-at-least-32-bytes-long";
const ISSUER = "https://issuer.test";
const AUDIENCE = "chatroom";
const ORIGIN = "https://chat.example.com";
const enc = (s: string) => new TextEncoder().encode(s);

interface SignOptions {
  key?: Uint8Array | CryptoKey;
  alg?: string;
  kid?: string;
  iss?: string | null;
  aud?: string | null;
  /** Seconds from now (negative: in the past); null for no exp. */
  exp?: number | null;
  nbf?: number;
}

/** A token for `claims`, by default a valid one for the HS256 node. */
function sign(claims: JWTPayload, o: SignOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: o.alg ?? "HS256", ...(o.kid ? { kid: o.kid } : {}) }).setIssuedAt(now);
  if (o.iss !== null) jwt.setIssuer(o.iss ?? ISSUER);
  if (o.aud !== null) jwt.setAudience(o.aud ?? AUDIENCE);
  if (o.exp !== null) jwt.setExpirationTime(now + (o.exp ?? 300));
  if (o.nbf !== undefined) jwt.setNotBefore(now + o.nbf);
  return jwt.sign(o.key ?? enc(SECRET));
}

/** Opens a WebSocket with the given headers; rejects with the HTTP status when refused. */
function open(t: Test, url: string, headers: Record<string, string> = {}): Promise<ChatClient> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  const client = new ChatClient(ws);
  t.teardown(() => ws.terminate());
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(client));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

const db = await freshDatabase(t);
const hs = await startInProcess(t, {
  DATABASE_URL: db,
  JWT_SECRET: SECRET,
  JWT_ISSUER: ISSUER,
  JWT_AUDIENCE: `other-service, ${AUDIENCE}`,
  JWT_CLOCK_TOLERANCE_S: "5",
  ALLOWED_ORIGINS: `${ORIGIN}, http://localhost:3000`,
});
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

t.test("a valid token (Bearer header or ?token=) opens the socket and its sub is the user", async (t) => {
  const alice = await sign({ sub: "alice" });
  const viaHeader = await open(t, wsUrl(hs.port, "jwt-ok"), bearer(alice));
  const ack = await viaHeader.request({ operation: "create", type: "text", body: "hi" });
  t.match(ack, { operation: "ack", seq: Number });
  t.match(await viaHeader.next((f) => f.operation === "create"), { message: { user: "alice" } }, "a frame without user acts as sub");
  t.match(await viaHeader.request({ operation: "typing", typing_status: "typing", user: "alice" }), { operation: "ack" }, "the same user is fine");
  t.match(await viaHeader.request({ operation: "create", type: "text", body: "x", user: "bob" }), { operation: "error", code: "forbidden" }, "another user is forbidden");

  // Another user: retries are recognised per (user, request_id), and each client counts from r1.
  const viaQuery = await open(t, wsUrl(hs.port, "jwt-ok", { token: await sign({ sub: "amy" }), user: "mallory" }));
  await viaQuery.request({ operation: "create", type: "text", body: "from the query token" });
  t.match(await viaQuery.next((f) => f.operation === "create" && f.message.body === "from the query token"), { message: { user: "amy" } }, "?user= is ignored in JWT mode");
});

t.test("the Authorization header wins over ?token=", async (t) => {
  const good = await sign({ sub: "alice" });
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-both", { token: "garbage" }), bearer(good)), 101, "good header, bad query");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-both", { token: good }), bearer("garbage")), 401, "bad header, good query");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-both", { token: good }), { Authorization: `Basic ${Buffer.from("a:b").toString("base64")}` }), 401, "not a Bearer header");
});

t.test("bad tokens are refused with 401 before the upgrade, and the group is never joined", async (t) => {
  const group = "jwt-refused";
  const other = enc("another-secret-that-is-also-long-enough!!");
  const rsa = await generateKeyPair("RS256");
  const cases: [string, string | null][] = [
    ["missing", null],
    ["empty", ""],
    ["not a JWT", "abc"],
    ["three garbage parts", "a.b.c"],
    ["too long", "a".repeat(9000)],
    ["expired beyond the clock tolerance", await sign({ sub: "u" }, { exp: -60 })],
    ["not valid yet", await sign({ sub: "u" }, { nbf: 60 })],
    ["signed with another secret", await sign({ sub: "u" }, { key: other })],
    ["wrong issuer", await sign({ sub: "u" }, { iss: "https://evil.test" })],
    ["no issuer", await sign({ sub: "u" }, { iss: null })],
    ["wrong audience", await sign({ sub: "u" }, { aud: "someone-else" })],
    ["no audience", await sign({ sub: "u" }, { aud: null })],
    ["no sub", await sign({})],
    ["sub not a valid user id", await sign({ sub: "bad\u0000user" })],
    ["sub too long", await sign({ sub: "x".repeat(129) })],
    ["alg none", new UnsecuredJWT({ sub: "u", iss: ISSUER, aud: AUDIENCE }).encode()],
    ["an RS256 token on an HS256 node", await sign({ sub: "u" }, { alg: "RS256", key: rsa.privateKey })],
    ["HS512 (only HS256 is accepted)", await sign({ sub: "u" }, { alg: "HS512" })],
    ["tampered payload", (await sign({ sub: "u" })).replace(/^([^.]+)\.([^.]+)\./, (_m, h) => `${h}.${Buffer.from(JSON.stringify({ sub: "admin", iss: ISSUER, aud: AUDIENCE })).toString("base64url")}.`)],
  ];
  const before = (await metric(hs.port, 'chat_auth_failures_total{status="401"}')) ?? 0;
  let attempts = 0;
  for (const [name, token] of cases) {
    t.equal(await upgradeStatus(wsUrl(hs.port, group), token === null ? {} : bearer(token)), 401, `${name}: header`);
    attempts++;
    if (token) {
      t.equal(await upgradeStatus(wsUrl(hs.port, group, { token })), 401, `${name}: ?token=`);
      attempts++;
    }
  }
  t.notOk(hs.service.memberships.has(group), "no refused socket made the node join the group");
  t.equal(await metric(hs.port, 'chat_auth_failures_total{status="401"}'), before + attempts, "every refusal is counted");

  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-skew"), bearer(await sign({ sub: "u" }, { exp: -2 }))), 101, "expired within the clock tolerance is still accepted");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-skew"), bearer(await sign({ sub: "u" }, { nbf: 2 }))), 101, "valid within the tolerance from now is accepted");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-skew"), bearer(await sign({ sub: "u" }, { aud: "other-service" }))), 101, "any listed audience is accepted");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-skew"), bearer(await sign({ sub: "u" }, { exp: null }))), 101, "a token without exp is accepted (issue short-lived ones)");
});

t.test("a groups claim limits the groups: 403 for any other", async (t) => {
  const token = await sign({ sub: "carol", groups: ["jwt-a", "jwt-b"] });
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-a"), bearer(token)), 101);
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-b"), bearer(token)), 101);
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-c"), bearer(token)), 403, "a group not in the claim");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-c"), bearer(await sign({ sub: "carol", groups: [] }))), 403, "an empty list allows nothing");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-a"), bearer(await sign({ sub: "carol", groups: "jwt-a" }))), 403, "a claim that is not a list allows nothing");
  t.notOk(hs.service.memberships.has("jwt-c"), "no subscription for the refused group");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-c"), bearer(await sign({ sub: "carol" }))), 101, "no claim: every group");
  t.ok(((await metric(hs.port, 'chat_auth_failures_total{status="403"}')) ?? 0) >= 3, "403s are counted");
});

t.test("a listed Origin is required from browsers when ALLOWED_ORIGINS is set", async (t) => {
  const headers = bearer(await sign({ sub: "dave" }));
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-origin"), { ...headers, Origin: ORIGIN }), 101, "listed origin");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-origin"), { ...headers, Origin: "http://localhost:3000" }), 101, "second listed origin");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-origin"), { ...headers, Origin: "https://evil.example" }), 403, "another origin");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-origin"), { ...headers, Origin: `${ORIGIN}.evil.example` }), 403, "a look-alike origin");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-origin"), headers), 101, "no Origin (not a browser)");
  t.equal(await upgradeStatus(wsUrl(hs.port, "jwt-origin"), { Origin: ORIGIN }), 401, "a good origin still needs a token");
});

t.test("HTTP history and files apply the same rules", async (t) => {
  const base = `http://127.0.0.1:${hs.port}`;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers });
  const erin = await sign({ sub: "erin", groups: ["jwt-files"] });
  const c = await open(t, wsUrl(hs.port, "jwt-files"), bearer(erin));
  await c.request({ operation: "create", type: "file", file: { name: "a.txt", content_type: "text/plain", data: Buffer.from("secret").toString("base64") } });
  const ev = await c.next((f) => f.operation === "create");
  if (ev.operation !== "create") throw new Error("unreachable");
  const file = ev.message.file!;

  const history = "/api/groups/jwt-files/messages";
  const unauthorized = await get(history);
  t.equal(unauthorized.status, 401, "history without a token");
  t.match(await unauthorized.json(), { error: "unauthorized", message: /token is required/ });
  t.equal((await get(history, bearer(await sign({ sub: "erin" }, { exp: -60 })))).status, 401, "history with an expired token");
  t.equal((await get(history, bearer(await sign({ sub: "erin", groups: ["elsewhere"] })))).status, 403, "history of a group the claim does not list");
  t.equal((await get(history, bearer(erin))).status, 200, "history with a good header");
  t.equal((await get(`${history}?token=${erin}`)).status, 200, "history with a good ?token=");
  t.equal((await get("/api/groups/a%2Fb/messages", bearer(erin))).status, 400, "the group rule comes first");
  const presence = "/api/groups/jwt-files/presence";
  t.equal((await get(presence)).status, 401, "presence without a token");
  t.equal((await get(presence, bearer(await sign({ sub: "erin", groups: ["elsewhere"] })))).status, 403, "presence of a group the claim does not list");
  const present = await get(presence, bearer(erin));
  t.equal(present.status, 200, "presence with a good token");
  t.match(await present.json(), { group: "jwt-files", count: 1, users: [{ user: "erin" }] }, "the token's sub is who is present");

  t.equal((await get(file)).status, 401, "a file without a token");
  t.equal((await get(file, bearer(await sign({ sub: "erin" }, { key: enc("x".repeat(40)) })))).status, 401, "a file with a badly signed token");
  t.equal((await get(file, bearer(await sign({ sub: "mallory", groups: ["elsewhere"] })))).status, 403, "a file of a group the claim does not list");
  const ok = await get(file, bearer(await sign({ sub: "frank" })));
  t.equal(ok.status, 200, "any user allowed in the file's group");
  t.equal(await ok.text(), "secret");
  t.equal((await get(`${file}?token=${erin}`)).status, 200, "a file with ?token= (for <img src>)");
  t.equal((await get("/files/00000000-0000-0000-0000-000000000000")).status, 401, "without a token, an unknown file is 401: nothing tells whether it exists");
  t.equal((await get("/files/00000000-0000-0000-0000-000000000000", bearer(erin))).status, 404, "with one, 404");
});

t.test("JWT_PUBLIC_KEY (RS256): tokens of that key only, and no algorithm confusion", async (t) => {
  const keys = await generateKeyPair("RS256");
  const pem = await exportSPKI(keys.publicKey);
  // Written with literal \n, as PEMs often are in environment variables.
  const node = await startInProcess(t, { DATABASE_URL: db, JWT_PUBLIC_KEY: pem.replace(/\n/g, "\\n") });
  const claims = { sub: "grace" };
  const none = { iss: null, aud: null };
  t.equal(await upgradeStatus(wsUrl(node.port, "rsa"), bearer(await sign(claims, { ...none, alg: "RS256", key: keys.privateKey }))), 101, "signed with the key");
  t.equal(await upgradeStatus(wsUrl(node.port, "rsa"), bearer(await sign(claims, { ...none, alg: "PS256", key: (await generateKeyPair("PS256")).privateKey }))), 401, "another RSA key");
  t.equal(await upgradeStatus(wsUrl(node.port, "rsa"), bearer(await sign(claims, { ...none, alg: "HS256", key: enc(pem) }))), 401, "HS256 with the public key as secret");
  t.equal(await upgradeStatus(wsUrl(node.port, "rsa"), bearer(await sign(claims, { ...none, alg: "HS256" }))), 401, "HS256: no secret on this node");
  t.equal(await upgradeStatus(wsUrl(node.port, "rsa"), bearer(await sign(claims, { ...none, alg: "ES256", key: (await generateKeyPair("ES256")).privateKey }))), 401, "an EC key");
});

t.test("JWT_JWKS_URL (ES256): keys come from the JWKS, a rotation overlap works, an unreachable JWKS is 503", async (t) => {
  const current = await generateKeyPair("ES256", { extractable: true });
  const next = await generateKeyPair("ES256", { extractable: true });
  const stranger = await generateKeyPair("ES256");
  let fetches = 0;
  const jwks = { keys: [{ ...(await exportJWK(current.publicKey)), kid: "k1", alg: "ES256", use: "sig" }, { ...(await exportJWK(next.publicKey)), kid: "k2", alg: "ES256", use: "sig" }] };
  const server = http.createServer((_req, res) => {
    fetches++;
    res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(jwks));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.teardown(() => void server.close());
  const node = await startInProcess(t, {
    DATABASE_URL: db,
    JWT_JWKS_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    JWT_ISSUER: ISSUER,
  });
  const es = (key: CryptoKey, kid: string) => sign({ sub: "heidi" }, { alg: "ES256", key, kid, aud: null });
  t.equal(await upgradeStatus(wsUrl(node.port, "jwks"), bearer(await es(current.privateKey, "k1"))), 101, "current key");
  t.equal(await upgradeStatus(wsUrl(node.port, "jwks"), bearer(await es(next.privateKey, "k2"))), 101, "next key, published before it is used");
  t.equal(await upgradeStatus(wsUrl(node.port, "jwks"), bearer(await es(stranger.privateKey, "k1"))), 401, "a stranger's key under a known kid");
  t.equal(await upgradeStatus(wsUrl(node.port, "jwks"), bearer(await es(stranger.privateKey, "k9"))), 401, "an unknown kid");
  t.equal(await upgradeStatus(wsUrl(node.port, "jwks"), bearer(await sign({ sub: "heidi" }, { aud: null }))), 401, "HS256 on a JWKS node");
  t.equal(fetches, 1, "the JWKS is fetched once and cached");

  const down = await startInProcess(t, { DATABASE_URL: db, JWT_JWKS_URL: "http://127.0.0.1:1/jwks.json" });
  t.equal(await upgradeStatus(wsUrl(down.port, "jwks"), bearer(await es(current.privateKey, "k1"))), 503, "JWKS unreachable: 503, not the client's fault");
  t.equal(await upgradeStatus(wsUrl(down.port, "jwks")), 401, "no token is still 401");
});

t.test("configuration: cross-variable rules are refused with one line naming what to fix", async (t) => {
  const refusals: [string, Record<string, string>, RegExp][] = [
    ["production with a short secret", { NODE_ENV: "production", JWT_SECRET: "CHANGE_ME" }, /JWT_SECRET must be at least 32 bytes/],
    ["both a public key and a JWKS", { JWT_PUBLIC_KEY: await exportSPKI((await generateKeyPair("ES256")).publicKey), JWT_JWKS_URL: "https://issuer.test/jwks.json" }, /JWT_PUBLIC_KEY or JWT_JWKS_URL/],
    ["an audience without a key", { JWT_AUDIENCE: "chat" }, /JWT_AUDIENCE is set but no JWT_SECRET/],
    ["an issuer without a key", { JWT_ISSUER: "https://issuer.test" }, /JWT_ISSUER is set but no JWT_SECRET/],
    ["a malformed public key", { JWT_PUBLIC_KEY: "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----" }, /JWT_PUBLIC_KEY must be a PEM public key/],
    ["a JWKS URL that is not http(s)", { JWT_JWKS_URL: "file:///etc/jwks.json" }, /JWT_JWKS_URL must be a URL/],
    ["an origin with a path", { ALLOWED_ORIGINS: "https://chat.example.com/app" }, /ALLOWED_ORIGINS must be comma-separated origins/],
  ];
  for (const [name, env, pattern] of refusals) {
    t.throws(() => checkStartup(loadConfig(env)), pattern, name);
  }
  t.throws(() => loadConfig({ JWT_SECRET: "x", MAX_FRAMES_PER_SECOND: "0" }), /MAX_FRAMES_PER_SECOND must be at least 1/);
  t.doesNotThrow(() => checkStartup(loadConfig({ NODE_ENV: "production", JWT_SECRET: SECRET })), "production with a long secret");
  t.doesNotThrow(() => checkStartup(loadConfig({ JWT_SECRET: "short" })), "a short secret outside production");
});

t.test("start-up: production without a key refuses to start; open dev mode warns loudly", async (t) => {
  const dir = await tempDir(t, "chat-jwt-");
  const [refused, openNode, secretNode] = await Promise.all([
    spawnNode(t, { DATA_DIR: dir, NODE_ENV: "production" }, { waitListening: false }),
    spawnNode(t, { DATA_DIR: dir }),
    spawnNode(t, { DATABASE_URL: db, JWT_SECRET: SECRET, NODE_ENV: "production" }),
  ]);
  t.equal(await within(refused.exited, 20_000, "exit"), 1, "exit code 1");
  const lines = refused.stderr.filter((l) => l.trim() !== "");
  t.equal(lines.length, 1, `one line on stderr: ${JSON.stringify(refused.stderr)}`);
  t.match(lines[0], /refusing to start: NODE_ENV=production needs JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL/);
  t.notOk(refused.logs.some((l) => l.msg === "listening"), "it never listened");

  const warning = openNode.logs.find((l) => l.level === 40 && /OPEN DEV MODE/.test(String(l.msg)));
  t.ok(warning, "open dev mode logs a warning at start");
  t.ok(openNode.logs.indexOf(warning!) < openNode.logs.findIndex((l) => l.msg === "listening"), "before it listens");
  t.match(secretNode.logs.find((l) => l.identity === "jwt"), { algorithms: ["HS256"] }, "JWT mode is logged with what it accepts");
  t.notOk(JSON.stringify(secretNode.logs).includes(SECRET), "the secret is never logged");
});
