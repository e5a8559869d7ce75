// Every configured limit, hit on purpose: each is answered with its contract error code (or
// HTTP status at the upgrade, or a close), the socket stays usable where the contract says so,
// and every hit is counted in /metrics as chat_limit_hits_total{limit}.
import t from "tap";
import { connect, upgradeStatus, wsUrl, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, metric } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { LIMITS } from "../../src/protocol/index.ts";
import { loadConfig } from "../../src/config/env.ts";

const db = await freshDatabase(t);
const node = await startInProcess(t, {
  DATABASE_URL: db,
  MAX_BODY_CHARS: "100",
  MAX_FILE_BYTES: "100",
  MAX_FRAME_BYTES: "4096",
  MAX_FRAMES_PER_SECOND: "5",
  MAX_FRAMES_BURST: "10",
  MAX_USER_FRAMES_PER_SECOND: "8",
  MAX_SOCKETS_PER_USER: "2",
});
const small = await startInProcess(t, { DATABASE_URL: db, MAX_PENDING_FRAMES: "2", MAX_GROUPS_PER_NODE: "3" });
const hits = async (port: number, limit: string) => (await metric(port, `chat_limit_hits_total{limit="${limit}"}`)) ?? -1;
const errors = async (port: number, code: string) => (await metric(port, `chat_errors_total{code="${code}"}`)) ?? -1;
const b64 = (n: number) => Buffer.alloc(n, 7).toString("base64");

/** Sends `n` typing frames at once (request ids `${prefix}${i}`) and collects the one answer each gets. */
async function burst(c: ChatClient, n: number, prefix: string): Promise<Frame[]> {
  for (let i = 0; i < n; i++) c.send({ operation: "typing", typing_status: "typing", request_id: `${prefix}${i}` });
  const answers: Frame[] = [];
  for (let i = 0; i < n; i++) answers.push(await c.next((f) => (f.operation === "ack" || f.operation === "error") && "request_id" in f && f.request_id === `${prefix}${i}`));
  return answers;
}
const count = (frames: Frame[], op: string) => frames.filter((f) => f.operation === op).length;

t.test("a body over MAX_BODY_CHARS is too_large", async (t) => {
  const c = await connect(t, node.port, "lim-body", { user: "b" });
  t.match(await c.request({ operation: "create", type: "text", body: "x".repeat(100) }), { operation: "ack" }, "at the limit");
  t.match(await c.request({ operation: "create", type: "text", body: "x".repeat(101) }), { operation: "error", code: "too_large" });
  t.match(await c.request({ operation: "create", type: "text", body: "😀".repeat(51) }), { operation: "error", code: "too_large" }, "counted in UTF-16 units");
  t.equal(await hits(node.port, "body_length"), 2);
  t.ok((await errors(node.port, "too_large")) >= 2, "and in chat_errors_total");
});

t.test("a file over MAX_FILE_BYTES is too_large", async (t) => {
  const c = await connect(t, node.port, "lim-file", { user: "f" });
  t.match(await c.request({ operation: "create", type: "file", file: b64(100) }), { operation: "ack" }, "at the limit");
  t.match(await c.request({ operation: "create", type: "file", file: b64(101) }), { operation: "error", code: "too_large" });
  t.match(await c.request({ operation: "create", type: "image", file: { name: "a.png", content_type: "image/png", data: b64(2000) } }), { operation: "error", code: "too_large" });
  t.equal(await hits(node.port, "file_size"), 2);
});

t.test("a frame over MAX_FRAME_BYTES closes that socket", async (t) => {
  const c = await connect(t, node.port, "lim-frame", { user: "fr" });
  c.send(JSON.stringify({ operation: "create", type: "text", body: "x".repeat(5000) }));
  const closed = await c.closed;
  t.ok([1006, 1009].includes(closed.code), `closed with ${closed.code}`);
  t.ok(await eventually(async () => (await hits(node.port, "frame_size")) === 1), "counted as frame_size");
});

t.test("frames per second per connection: a token bucket, then rate_limited with the request_id", async (t) => {
  const c = await connect(t, node.port, "lim-rate", { user: "r" });
  const answers = await burst(c, 30, "a");
  t.ok(count(answers, "ack") >= 10 && count(answers, "ack") <= 11, `the burst of 10 passes (${count(answers, "ack")} acks)`);
  t.equal(count(answers, "ack") + count(answers, "error"), 30, "every frame got exactly one answer");
  t.ok(answers.slice(11).every((f) => f.operation === "error" && f.code === "rate_limited"), "the rest are rate_limited, each echoing its request_id");
  t.equal(await hits(node.port, "socket_rate"), count(answers, "error"));
  await new Promise((r) => setTimeout(r, 100));
  t.notOk(c.received.some((f) => f.operation === "ack" || f.operation === "error"), "and no second answer to any frame");
  await new Promise((r) => setTimeout(r, 1_100));
  t.ok(count(await burst(c, 5, "b"), "ack") >= 5, "after a second, 5 more are accepted");
  c.send("{not json");
  t.match(await c.next((f) => f.operation === "error"), { operation: "error", code: "bad_request" }, "and the socket still works");
});

t.test("frames per second per user, over all the user's sockets on the node", async (t) => {
  const [a, b, other] = await Promise.all([
    connect(t, node.port, "lim-user", { user: "u" }),
    connect(t, node.port, "lim-user-2", { user: "u" }),
    connect(t, node.port, "lim-user", { user: "v" }),
  ]);
  const before = await hits(node.port, "user_rate");
  const [ra, rb] = await Promise.all([burst(a, 10, "a"), burst(b, 10, "b")]);
  const acks = count(ra, "ack") + count(rb, "ack");
  t.ok(acks >= 16 && acks <= 17, `the user's burst of 16 (2 x 8/s) passes, not the socket bursts of 2 x 10 (${acks} acks)`);
  t.ok([...ra, ...rb].filter((f) => f.operation === "error").every((f) => f.operation === "error" && f.code === "rate_limited" && /this user/.test(f.message)));
  t.equal((await hits(node.port, "user_rate")) - before, 20 - acks);
  t.match(await other.request({ operation: "typing", typing_status: "typing" }), { operation: "ack" }, "another user is not affected");
});

t.test("reconnecting does not refill a user's bucket: it outlives their last socket until it would have refilled", async (t) => {
  // Two sockets, because one socket's own burst (10) is below the user's (16).
  const [a, b] = await Promise.all([connect(t, node.port, "lim-again", { user: "w" }), connect(t, node.port, "lim-again", { user: "w" })]);
  const spent = await Promise.all([burst(a, 8, "a"), burst(b, 8, "b")]);
  t.equal(count(spent.flat(), "ack"), 16, "the user's burst of 16 passes");
  await Promise.all([a.close(), b.close()]);
  const again = await connect(t, node.port, "lim-again", { user: "w" });
  const answers = await burst(again, 10, "c");
  // A fresh bucket would accept all 10; what came back meanwhile at 8/s is a few at most.
  t.ok(count(answers, "ack") <= 4, `a new socket right away gets no fresh user burst (${count(answers, "ack")} of 10 accepted)`);
  t.ok(answers.filter((f) => f.operation === "error").every((f) => f.operation === "error" && /this user/.test(f.message)), "refused as this user's limit");
  await again.close();
  await new Promise((r) => setTimeout(r, 2_300)); // past the refill time, the user starts afresh
  const later = await connect(t, node.port, "lim-again", { user: "w" });
  t.equal(count(await burst(later, 10, "d"), "ack"), 10, "after 2 s the bucket is full again");
});

t.test("sockets per user: the next upgrade is refused with 429", async (t) => {
  const first = await connect(t, node.port, "lim-sock", { user: "s" });
  await connect(t, node.port, "lim-sock-2", { user: "s" });
  const errorsBefore = await errors(node.port, "rate_limited");
  t.equal(await upgradeStatus(wsUrl(node.port, "lim-sock", { user: "s" })), 429, "a third socket of the same user");
  t.equal(await hits(node.port, "sockets_per_user"), 1);
  t.equal(await errors(node.port, "rate_limited"), errorsBefore + 1, "counted as rate_limited too");
  t.equal(await upgradeStatus(wsUrl(node.port, "lim-sock", { user: "s2" })), 101, "another user");
  await first.close();
  t.ok(await eventually(async () => (await upgradeStatus(wsUrl(node.port, "lim-sock", { user: "s" }))) === 101), "a slot frees when a socket closes");
});

t.test("open dev mode without ?user= still has per-user limits: the connection's address is its user", async (t) => {
  // At MAX_SOCKETS_PER_USER=2 and MAX_USER_FRAMES_PER_SECOND=8 (burst 16).
  const a = await connect(t, node.port, "lim-anon");
  const b = await connect(t, node.port, "lim-anon-2");
  const hitsBefore = await hits(node.port, "sockets_per_user");
  t.equal(await upgradeStatus(wsUrl(node.port, "lim-anon-3")), 429, "a third anonymous socket from the same address is refused");
  t.equal(await hits(node.port, "sockets_per_user"), hitsBefore + 1);
  const typing = (c: ChatClient, p: string) => {
    for (let i = 0; i < 10; i++) c.send({ operation: "typing", typing_status: "typing", user: `anon-${p}${i}`, request_id: `${p}${i}` });
    return Promise.all(Array.from({ length: 10 }, (_, i) => c.next((f) => "request_id" in f && f.request_id === `${p}${i}`)));
  };
  const answers = (await Promise.all([typing(a, "a"), typing(b, "b")])).flat();
  t.equal(answers.filter((f) => f.operation === "ack").length, 16, "both sockets together get the address's burst of 16, whatever user each frame names");
  await Promise.all([a.close(), b.close()]);
  t.ok(await eventually(async () => (await upgradeStatus(wsUrl(node.port, "lim-anon"))) === 101), "a slot frees when one closes");
});

t.test("at the default MAX_SOCKETS_PER_USER (20), the 21st socket of a user or an address is refused", async (t) => {
  const limit = loadConfig({}).MAX_SOCKETS_PER_USER;
  for (const query of [{ user: "many" }, {}] as Record<string, string>[]) {
    for (let i = 0; i < limit; i++) await connect(t, small.port, `lim-many-${i % 3}`, query);
    t.equal(await upgradeStatus(wsUrl(small.port, "lim-many-0", query)), 429, `the ${limit + 1}st ${query.user ? "socket of a user" : "anonymous socket"} is refused`);
  }
});

t.test("frames awaiting an answer past MAX_PENDING_FRAMES are rate_limited", async (t) => {
  const c = await connect(t, small.port, "lim-pending", { user: "p" });
  for (let i = 0; i < 20; i++) c.send({ operation: "create", type: "text", body: `m${i}`, request_id: `p${i}` });
  const answers: Frame[] = [];
  for (let i = 0; i < 20; i++) answers.push(await c.next((f) => (f.operation === "ack" || f.operation === "error") && "request_id" in f && f.request_id === `p${i}`));
  const refused = answers.filter((f) => f.operation === "error");
  t.ok(refused.length > 0 && refused.every((f) => f.operation === "error" && f.code === "rate_limited"), `${refused.length} of 20 refused with rate_limited`);
  t.equal(await hits(small.port, "pending_frames"), refused.length);
});

t.test("groups per node: a new group past MAX_GROUPS_PER_NODE is refused with 503, known ones still join", async (t) => {
  t.ok(await eventually(() => small.service.memberships.size === 0), "no group left from earlier tests");
  const g3 = await connect(t, small.port, "lim-g3", { user: "g" });
  await connect(t, small.port, "lim-g1", { user: "g" });
  await connect(t, small.port, "lim-g2", { user: "h" });
  t.equal(await upgradeStatus(wsUrl(small.port, "lim-g4", { user: "h" })), 503, "a fourth group");
  t.notOk(small.service.memberships.has("lim-g4"), "and the node did not subscribe to it");
  t.equal(await upgradeStatus(wsUrl(small.port, "lim-g1", { user: "i" })), 101, "a group the node already serves");
  t.equal(await hits(small.port, "groups_per_node"), 1);
  await g3.close();
  t.ok(await eventually(async () => (await upgradeStatus(wsUrl(small.port, "lim-g4", { user: "h" }))) === 101), "room again once a group is left");
});

t.test("/metrics has a zero series for every limit from the start", async (t) => {
  const text = await (await fetch(`http://127.0.0.1:${small.port}/metrics`)).text();
  for (const limit of LIMITS) t.match(text, new RegExp(`^chat_limit_hits_total\\{limit="${limit}"\\} \\d+$`, "m"), limit);
});
