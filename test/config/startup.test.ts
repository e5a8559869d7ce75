// Start-up: configuration is validated first (an invalid value stops the process with one line
// naming the variable), an unreachable Redis stops it too, and with no configuration at all the
// node runs on embedded PGlite and the in-process bus.
import { SignJWT } from "jose";
import t from "tap";
import { connect, upgradeStatus, wsUrl } from "../helpers/client.ts";
import { spawnNode, type Env } from "../helpers/node.ts";
import { listeningPort, tempDir, untilReady, within } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { listenHost, loadConfig } from "../../src/config/env.ts";

const invalid: [string, string][] = [
  ["PORT", "abc"],
  ["PORT", "70000"],
  ["MAX_BODY_CHARS", "0"],
  ["REDIS_URL", "http://x"],
  ["DATABASE_URL", "mysql://db/chat"],
  ["LOG_LEVEL", "loud"],
  ["DRAIN_DELAY_MS", "-1"],
];

/** A node that should fail to start: its exit code (or why it did not exit) and what it printed. */
async function failedStart(env: Env, ms: number) {
  const node = await spawnNode(t, env, { waitListening: false });
  const code = await within(node.exited, ms, "exit").catch((err: Error) => err.message);
  const times = node.logs.map((l) => Number(l.time)).filter(Number.isFinite);
  return { node, code, ms: times.length ? Math.max(...times) - Math.min(...times) : NaN };
}
type FailedStart = Awaited<ReturnType<typeof failedStart>>;

// Shared by the tests that need a reachable database but are not about the embedded one.
let DATABASE_URL = "";
let redisDown!: Promise<FailedStart>;
const outcomes: Promise<FailedStart>[] = [];

// Set-up runs in t.before: if it fails, tap still runs the teardowns (database dropped, nodes
// killed), which it skips when a top-level await throws.
t.before(async () => {
  DATABASE_URL = await freshDatabase(t);
  // DATA_DIR points at scratch space in case a bad value were accepted and the node went on to start.
  const scratch = await tempDir(t, "chat-config-");
  // Started now and checked below: it spends its ~10 s waiting for Redis while the quick cases run.
  // The wall-clock bound is generous for a loaded machine; the ~15 s is measured on the node's own clock.
  redisDown = failedStart({ DATABASE_URL, REDIS_URL: "redis://127.0.0.1:1" }, 30_000);
  // The invalid values run two at a time next to it (three node processes at most).
  for (let i = 0; i < invalid.length; i += 2) {
    const previous = Promise.allSettled(outcomes.slice(-2));
    for (const [name, value] of invalid.slice(i, i + 2)) outcomes.push(previous.then(() => failedStart({ DATA_DIR: scratch, [name]: value }, 15_000)));
  }
  // Each is reported by its test.
  for (const p of [redisDown, ...outcomes]) p.catch(() => {});
});

for (const [i, [name, value]] of invalid.entries()) {
  t.test(`${name}=${value} stops the process with exit code 1 and one line on stderr naming ${name}`, async (t) => {
    const { node, code } = await outcomes[i]!;
    t.equal(code, 1, "exit code 1");
    const lines = node.stderr.filter((l) => l.trim() !== "");
    t.equal(lines.length, 1, `exactly one line on stderr: ${JSON.stringify(node.stderr)}`);
    t.match(lines[0], new RegExp(`\\b${name}\\b`), "the line names the variable");
    t.notOk(node.logs.some((l) => l.msg === "listening"), "it never listened");
  });
}

t.test("a REDIS_URL pointing at a closed port fails start-up with a message naming Redis", async (t) => {
  const { node, code, ms } = await redisDown;
  t.not(code, 0, `non-zero exit (${code})`);
  t.ok(ms < 15_000, `gives up within 15 s of starting (${ms} ms from its first log line to its last)`);
  t.notOk(node.logs.some((l) => l.msg === "listening"), "it never listened");
  const said = [...node.stderr, ...node.logs.filter((l) => Number(l.level) >= 50).map((l) => String(l.msg))];
  t.ok(said.some((l) => /redis/i.test(l)), `an error names Redis: ${JSON.stringify(said)}`);
});

t.test("with no configuration but DATA_DIR and PORT=0 the node runs on embedded PGlite and the in-process bus", async (t) => {
  const dir = await tempDir(t, "chat-default-");
  // Only PATH and HOME come from the test (spawnNode); HOST and LOG_LEVEL are left to their defaults.
  const env: Env = { DATA_DIR: dir, PORT: "0", HOST: undefined, LOG_LEVEL: undefined };
  const node = await spawnNode(t, env, { waitListening: false });
  node.port = await listeningPort(node);
  t.match(node.logs.find((l) => l.msg === "database ready"), { database: "pglite", dataDirFrom: "template", migrationsApplied: [] }, "embedded PGlite, its fresh data directory unpacked from the build's template");
  t.match(node.logs.find((l) => l.msg === "listening"), { bus: "memory", host: "127.0.0.1" }, "in-process bus; open dev mode listens on the loopback only");
  await untilReady(node.port);

  const a = await connect(t, node.port, "default-mode", { user: "a" });
  const b = await connect(t, node.port, "default-mode", { user: "b" });
  const ack = await a.request({ operation: "create", type: "text", body: "hello from the default mode" });
  t.match(ack, { operation: "ack", seq: 1, message_id: String });
  t.match(await a.next((f) => f.operation === "create"), { seq: 1, message: { id: ack.message_id, user: "a", body: "hello from the default mode" } });
  t.match(await b.next((f) => f.operation === "create"), { seq: 1, message: { id: ack.message_id } }, "another client receives it");
  await b.nothingMore(t);

  node.child.kill("SIGTERM");
  t.equal(await within(node.exited, 15_000, "exit"), 0, "exits 0 on SIGTERM");
});

t.test("open dev mode binds 127.0.0.1 unless HOST is set; JWT mode binds every interface", async (t) => {
  t.equal(listenHost(loadConfig({})), "127.0.0.1", "open dev mode: loopback only");
  t.equal(listenHost(loadConfig({ JWT_SECRET: "x".repeat(32) })), "0.0.0.0", "JWT mode: every interface");
  t.equal(listenHost(loadConfig({ HOST: "0.0.0.0" })), "0.0.0.0", "HOST wins in open dev mode");
  t.equal(listenHost(loadConfig({ HOST: "127.0.0.1", JWT_SECRET: "x".repeat(32) })), "127.0.0.1", "and in JWT mode");
});

t.test("with JWT_SECRET unset the node says loudly that it runs in open dev mode", async (t) => {
  const node = await spawnNode(t, { DATABASE_URL });
  const loud = node.logs.filter((l) => Number(l.level) >= 40 && /JWT_SECRET|open|dev mode|unauthenticated|no auth/i.test(String(l.msg)));
  t.ok(loud.length >= 1, `a warning (or louder) line about open dev mode; logged: ${JSON.stringify(node.logs.map((l) => [l.level, l.msg]))}`);
});

t.test("with JWT_SECRET set the node requires a valid token on every connection", async (t) => {
  const secret = "test-secret-that-is-long-enough-for-hs256";
  const node = await spawnNode(t, { DATABASE_URL, JWT_SECRET: secret });
  await untilReady(node.port);
  const token = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject("alice").setExpirationTime("5m").sign(new TextEncoder().encode(secret));
  t.equal(await upgradeStatus(wsUrl(node.port, "jwt-room", { user: "alice" })), 401, "no token: refused with 401 (?user= is ignored)");
  t.equal(await upgradeStatus(wsUrl(node.port, "jwt-room"), { Authorization: "Bearer not-a-jwt" }), 401, "a malformed token: 401");
  t.equal(await upgradeStatus(wsUrl(node.port, "jwt-room"), { Authorization: `Bearer ${token}` }), 101, "a valid token: upgraded");
});
