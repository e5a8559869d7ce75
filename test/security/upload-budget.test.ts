// Uploads are budgeted in bytes per second (src/gateway/upload-budget.ts): a frame of 64 KiB or
// more (a file in a `create`) takes its bytes from its user's bucket
// (MAX_USER_UPLOAD_BYTES_PER_SECOND, 4 MiB/s) and the node's (MAX_UPLOAD_BYTES_PER_SECOND,
// 8 MiB/s, shared with server-API bodies). Past a bucket's two-second burst an upload waits its
// turn, its socket's later frames behind it; one whose turn is more than 2 s away is refused
// with rate_limited. The node also holds at most MAX_UPLOAD_INFLIGHT_BYTES (24 MiB) of uploads
// at once, from arrival until answered: past that an upload is refused with rate_limited at once
// (a lone upload always passes). Checked at the defaults against a real node process with files
// at the default MAX_FILE_BYTES, and the HTTP path and the bytes in flight at small values.
// Every timing assertion is a lower bound (an upload cannot have been handled sooner than the
// rate allows), which load can only make truer; the upper bounds are counts: with uploads sent
// at once, some must be refused. Uploads are held in flight by a transaction that holds their
// group's row lock (the store's write waits for it), not by timing.
import t, { type Test } from "tap";
import WebSocket from "ws";
import { ChatClient, wsUrl, type Frame } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";
import { loadConfig } from "../../src/config/env.ts";
import { UPLOAD_BURST_MS } from "../../src/gateway/upload-budget.ts";

t.setTimeout(180_000);
const defaults = loadConfig({});
const USER_RATE = defaults.MAX_USER_UPLOAD_BYTES_PER_SECOND;
const NODE_RATE = defaults.MAX_UPLOAD_BYTES_PER_SECOND;
const INFLIGHT = defaults.MAX_UPLOAD_INFLIGHT_BYTES;
const KEY = "upload-budget-key-0123456789";
const db = await freshDatabase(t);
// Storing a 5 MiB file can outlast the 5 s store default on a loaded machine (load 50 seen): that would answer unavailable.
const [node, held, small, tight] = await Promise.all([
  spawnNode(t, { DATABASE_URL: db, STORE_TIMEOUT_MS: "60000" }),
  // The defaults again, for the bytes in flight: a node whose rate buckets no other test has drawn on.
  spawnNode(t, { DATABASE_URL: db, STORE_TIMEOUT_MS: "60000" }),
  // The HTTP path: 400 KiB/s makes 600 KB bodies wait, and a 4.5 MB body is more than the whole node buffer (4 MiB).
  spawnNode(t, { DATABASE_URL: db, STORE_TIMEOUT_MS: "60000", SERVER_API_KEYS: KEY, MAX_UPLOAD_BYTES_PER_SECOND: String(400 * 1024), MAX_NODE_BUFFER_BYTES: String(4 * 1024 * 1024) }),
  // Upload bytes in flight at a small value: 1 MiB, i.e. one upload of 600 KB at a time.
  spawnNode(t, { DATABASE_URL: db, STORE_TIMEOUT_MS: "60000", SERVER_API_KEYS: KEY, MAX_UPLOAD_INFLIGHT_BYTES: String(1024 * 1024) }),
]);
await Promise.all([untilReady(node.port), untilReady(held.port), untilReady(small.port), untilReady(tight.port)]);

/** Holds `group`'s row lock in an open transaction until the returned release: the store's writes to it wait. */
async function lockGroup(t: Test, group: string): Promise<() => Promise<void>> {
  const c = await sql(t, db);
  await c.query(`INSERT INTO "groups" ("name") VALUES ($1) ON CONFLICT DO NOTHING`, [group]);
  await c.query("BEGIN");
  await c.query(`SELECT 1 FROM "groups" WHERE "name" = $1 FOR UPDATE`, [group]);
  let open = true;
  return async () => {
    if (open) await c.query("COMMIT").catch(() => {}); // at teardown its connection may be closed already (that rolls back too)
    open = false;
  };
}

/**
 * A client whose frames cost it nothing to send (ws skips masking with an all-zero key, which
 * servers accept), so a burst of uploads reaches the node at once even on a loaded machine.
 */
function connect(t: Test, port: number, group: string, query: Record<string, string>): Promise<ChatClient> {
  const ws = new WebSocket(wsUrl(port, group, query), { perMessageDeflate: false, generateMask: () => {} });
  const client = new ChatClient(ws);
  t.teardown(() => ws.terminate());
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(client));
    ws.once("error", reject);
  });
}
const sendRaw = (c: ChatClient, frame: Buffer) => c.ws.send(frame, { binary: false });

/** A file create at the default MAX_FILE_BYTES: a ~7 MB frame (request ids of equal length, so equal frames). */
const FILE = Buffer.alloc(defaults.MAX_FILE_BYTES, 0x41).toString("base64");
const upload = (rid: string) => Buffer.from(JSON.stringify({ operation: "create", type: "file", file: { name: "big.bin", content_type: "application/octet-stream", data: FILE }, request_id: rid }));
const FRAME_BYTES = upload("u-00").byteLength;
/**
 * An upload-sized frame that costs the node almost nothing once taken (it is not JSON: refused
 * with bad_request at its first bytes), so a burst of them outruns the node's budget however
 * slowly a loaded machine would have stored real files.
 */
const junk = Buffer.concat([Buffer.from('{"operation": !'), Buffer.alloc(FRAME_BYTES - 15, 0x41)]);
/** The earliest (ms after the first arrived) that `bytes` of uploads at `rate` can all have been taken: what a bucket pays beyond its burst. */
const earliestMs = (bytes: number, rate: number) => Math.max(0, (bytes / rate) * 1000 - UPLOAD_BURST_MS);
const hits = async (port: number, limit: string) => (await metric(port, `chat_limit_hits_total{limit="${limit}"}`)) ?? -1;
const answerTo = (c: ChatClient, rid: string, ms = 60_000) => c.next((f) => "request_id" in f && f.request_id === rid, ms);

t.test("the defaults are 4 MiB/s per user, 8 MiB/s per node and 24 MiB in flight, and a default file is an upload", async (t) => {
  t.equal(USER_RATE, 4 * 1024 * 1024);
  t.equal(NODE_RATE, 8 * 1024 * 1024);
  t.equal(INFLIGHT, 24 * 1024 * 1024);
  t.equal(UPLOAD_BURST_MS, 2_000);
  t.ok(FRAME_BYTES > 64 * 1024 && FRAME_BYTES < defaults.MAX_FRAME_BYTES, `a ${FRAME_BYTES}-byte frame`);
});

t.test("one socket's uploads past its user's burst wait their turn, and its later frames wait behind them in order", async (t) => {
  const group = uniqueGroup("up-order");
  const c = await connect(t, node.port, group, { user: "orderly" });
  const sentAt = performance.now();
  sendRaw(c, upload("u-0a"));
  sendRaw(c, upload("u-0b"));
  c.send({ operation: "create", type: "text", body: "after the files", request_id: "c" });
  const answers: [Frame, number][] = [];
  for (const rid of ["u-0a", "u-0b", "c"]) answers.push([await answerTo(c, rid), performance.now() - sentAt]);
  for (const [f] of answers) t.match(f, { operation: "ack" }, `${"request_id" in f ? f.request_id : "?"} stored`);
  const seqs = answers.map(([f]) => (f as { seq?: number }).seq ?? 0);
  t.ok(seqs[0]! < seqs[1]! && seqs[1]! < seqs[2]!, `stored in the order sent (${seqs.join(" < ")})`);
  // Two uploads of the user: the second goes once the bucket has paid for both, less its 2 s burst.
  const earliest = earliestMs(2 * FRAME_BYTES, USER_RATE);
  t.ok(answers[1]![1] >= earliest, `the second upload was answered after ${answers[1]![1].toFixed(0)} ms, not before its turn (${earliest.toFixed(0)} ms)`);
  t.ok(answers[2]![1] >= answers[1]![1], "the small frame behind it was answered after it");
});

t.test("a user's uploads past the default per-user budget are refused with rate_limited; another socket is answered meanwhile", async (t) => {
  const group = uniqueGroup("up-user");
  const before = await hits(node.port, "user_upload_rate");
  const N = 8; // sent at once: the 2nd's turn is 1.3 s away, the 3rd's 3 s, the 8th's 11 s
  const sockets: ChatClient[] = [];
  for (let i = 0; i < N; i++) sockets.push(await connect(t, node.port, group, { user: "uploader" }));
  // The victim is in a group of its own: another group's writes are not queued behind the uploads' in the store.
  const victim = await connect(t, node.port, uniqueGroup("up-victim"), { user: "victim" });
  const sentAt = performance.now();
  sockets.forEach((c, i) => sendRaw(c, upload(`u-1${i}`)));
  const answers = sockets.map((c, i) => answerTo(c, `u-1${i}`).then((f) => ({ f, ms: performance.now() - sentAt })));
  // The victim types while the uploads are received and queued: its round trip does not wait for them.
  victim.send({ operation: "typing", typing_status: "typing" });
  await victim.next((f) => f.operation === "typing" && f.user === "victim", 30_000);
  const victimMs = performance.now() - sentAt;
  const all = await Promise.all(answers);
  const first = Math.min(...all.map((a) => a.ms));
  const acked = all.filter((a) => a.f.operation === "ack");
  const refused = all.filter((a) => a.f.operation !== "ack");
  t.comment(`first upload answered after ${first.toFixed(0)} ms; the victim's typing round trip took ${victimMs.toFixed(0)} ms; uploads: ${acked.length} stored, ${refused.length} refused; answers at ${all.map((a) => a.ms.toFixed(0)).join(", ")} ms`);
  t.ok(refused.length >= 1, `uploads sent at once past the user's budget are refused (${refused.length} of ${N})`);
  for (const r of refused) t.match(r.f, { operation: "error", code: "rate_limited", message: /uploads past your budget of 4 MiB\/s; retry in \d+ s/ }, "rate_limited, naming the user's budget");
  t.ok(acked.length >= 2, `the burst and the turn within 2 s are stored (${acked.length})`);
  t.equal((await hits(node.port, "user_upload_rate")) - before, refused.length, "counted as user_upload_rate");
  const lastAck = Math.max(...acked.map((a) => a.ms));
  const earliest = earliestMs(acked.length * FRAME_BYTES, USER_RATE);
  t.ok(lastAck >= earliest, `the last of ${acked.length} stored uploads was answered after ${lastAck.toFixed(0)} ms, not before its turn (${earliest.toFixed(0)} ms)`);
  t.ok(await eventually(async () => (await metric(node.port, "chat_buffer_bytes")) === 0, 10_000), "nothing is held once all are answered");
});

t.test("upload-sized frames of many users past the default node budget are refused with rate_limited; the node takes them at its rate", async (t) => {
  const group = uniqueGroup("up-node");
  const before = { hits: await hits(node.port, "upload_rate"), bytes: (await metric(node.port, "chat_upload_bytes_total")) ?? 0 };
  const N = 12; // one each: the 5th's turn is 2.2 s away, the 12th's 8 s
  // Connected one after another: a burst of parallel connects on this loaded machine once saw a
  // socket closed (1006) by the peer 1 ms after the node opened it, before any frame was sent.
  const sockets: ChatClient[] = [];
  for (let i = 0; i < N; i++) sockets.push(await connect(t, node.port, group, { user: `many-${i}` }));
  const sentAt = performance.now();
  for (const c of sockets) sendRaw(c, junk);
  // One frame per socket: its answer is the socket's first frame (bad_request once taken; rate_limited when refused).
  const all = await Promise.all(sockets.map((c) => c.next(() => true, 60_000).then((f) => ({ f, ms: performance.now() - sentAt }))));
  const acked = all.filter((a) => a.f.operation === "error" && a.f.code === "bad_request");
  const refused = all.filter((a) => !acked.includes(a));
  t.comment(`${acked.length} stored, ${refused.length} refused; answers at ${all.map((a) => a.ms.toFixed(0)).join(", ")} ms`);
  t.ok(refused.length >= 1, `uploads sent at once past the node's budget are refused (${refused.length} of ${N})`);
  for (const r of refused) t.match(r.f, { operation: "error", code: "rate_limited", message: /uploads past this node's budget of 8 MiB\/s/ }, "rate_limited, naming the node's budget");
  t.equal((await hits(node.port, "upload_rate")) - before.hits, refused.length, "counted as upload_rate");
  t.equal((await metric(node.port, "chat_upload_bytes_total"))! - before.bytes, acked.length * FRAME_BYTES, "chat_upload_bytes_total counts the bytes taken");
  const lastAck = Math.max(...acked.map((a) => a.ms));
  const earliest = earliestMs(acked.length * FRAME_BYTES, NODE_RATE);
  t.ok(lastAck >= earliest, `the last of ${acked.length} taken was answered after ${lastAck.toFixed(0)} ms, not before its turn (${earliest.toFixed(0)} ms)`);
});

t.test("a socket that closes while its uploads wait leaves nothing held", async (t) => {
  const c = await connect(t, node.port, uniqueGroup("up-drop"), { user: "dropper" });
  await eventually(async () => (await metric(node.port, "chat_buffer_bytes")) === 0, 10_000);
  sendRaw(c, upload("u-d0"));
  sendRaw(c, upload("u-d1")); // waits ~1.3 s for its turn
  await eventually(async () => ((await metric(node.port, "chat_buffer_bytes")) ?? 0) >= FRAME_BYTES, 10_000);
  c.ws.terminate();
  t.ok(await eventually(async () => (await metric(node.port, "chat_buffer_bytes")) === 0, 10_000), "the waiting upload's bytes are given back");
  t.equal(node.child.exitCode, null, "the node runs on");
  const again = await connect(t, node.port, uniqueGroup("up-drop"), { user: "other" });
  t.match(await again.request({ operation: "create", type: "text", body: "fine" }), { operation: "ack" });
});

t.test("at the default, three files at the cap are held at once and a fourth is refused with rate_limited until they are answered", async (t) => {
  // Four users, one upload each: within the node's rate (the 3rd waits 0.5 s, the 4th 1.3 s), so only the bytes in flight refuse.
  const group = uniqueGroup("up-inflight");
  const release = await lockGroup(t, group);
  t.teardown(release);
  const sockets: ChatClient[] = [];
  for (let i = 0; i < 4; i++) sockets.push(await connect(t, held.port, group, { user: `held-${i}` }));
  const inflight = () => metric(held.port, "chat_upload_inflight_bytes");
  t.equal(await inflight(), 0, "nothing in flight before");
  for (let i = 0; i < 3; i++) {
    sendRaw(sockets[i]!, upload(`u-h${i}`));
    // In order: the three are taken before the fourth arrives (each waits for the lock, or its turn, meanwhile).
    t.ok(await eventually(async () => (await inflight()) === (i + 1) * FRAME_BYTES, 30_000), `${i + 1} held (${await inflight()} bytes in flight)`);
  }
  sendRaw(sockets[3]!, upload("u-h3"));
  t.match(await answerTo(sockets[3]!, "u-h3"), { operation: "error", code: "rate_limited", message: "this node is handling 24 MiB of uploads at once; retry shortly" }, "the fourth (28 MB in flight with it) is refused at once");
  t.equal(await hits(held.port, "upload_inflight"), 1, "counted as upload_inflight");
  t.equal(await inflight(), 3 * FRAME_BYTES, "the refused one holds nothing");
  await release();
  for (let i = 0; i < 3; i++) t.match(await answerTo(sockets[i]!, `u-h${i}`), { operation: "ack" }, `upload ${i} stored once its group is free`);
  t.ok(await eventually(async () => (await inflight()) === 0, 10_000), "nothing in flight once they are answered");
  t.match(await sockets[3]!.request({ operation: "create", type: "file", file: { name: "again.bin", content_type: "application/octet-stream", data: FILE } }, 60_000), { operation: "ack" }, "and the refused upload, sent again, is stored");
});

t.test("at a small MAX_UPLOAD_INFLIGHT_BYTES a lone upload larger than it passes, and frames and server-API bodies past it are refused", async (t) => {
  const group = uniqueGroup("up-tight");
  const release = await lockGroup(t, group);
  t.teardown(release);
  const before = await hits(tight.port, "upload_inflight");
  const file = Buffer.alloc(800_000, 3).toString("base64"); // a ~1.07 MB frame: more than the 1 MiB alone
  const frame = (rid: string) => Buffer.from(JSON.stringify({ operation: "create", type: "file", file, request_id: rid }));
  const [a, b] = [await connect(t, tight.port, group, { user: "tight-a" }), await connect(t, tight.port, group, { user: "tight-b" })];
  const first = answerTo(a, "t-a");
  sendRaw(a, frame("t-a"));
  t.ok(await eventually(async () => (await metric(tight.port, "chat_upload_inflight_bytes")) === frame("t-a").byteLength, 30_000), "a lone upload over the budget is taken");
  sendRaw(b, frame("t-b"));
  t.match(await answerTo(b, "t-b"), { operation: "error", code: "rate_limited", message: "this node is handling 1 MiB of uploads at once; retry shortly" }, "a second frame meanwhile is refused");
  const api = await post(tight.port, fileBody(100_000, "t-api")); // a 133 KB body: an upload too
  t.match(api, { status: 429, json: { code: "rate_limited", message: "this node is handling 1 MiB of uploads at once; retry shortly" } }, "and so is a server-API body");
  b.send({ operation: "create", type: "text", body: "small frames are not uploads", request_id: "t-small" });
  t.equal(await metric(tight.port, "chat_upload_inflight_bytes"), frame("t-a").byteLength, "refusals hold nothing");
  t.equal((await hits(tight.port, "upload_inflight")) - before, 2, "both counted as upload_inflight");
  await release();
  t.match(await first, { operation: "ack" }, "the held upload is stored");
  t.match(await answerTo(b, "t-small"), { operation: "ack" }, "the small frame too");
  t.ok(await eventually(async () => (await metric(tight.port, "chat_upload_inflight_bytes")) === 0, 10_000), "nothing held afterwards");
  t.match(await post(tight.port, fileBody(100_000, "t-api-2")), { status: 200 }, "then a body is taken");
  t.equal(await metric(tight.port, "chat_upload_inflight_bytes"), 0, "and given back once answered");
});

async function post(port: number, body: string): Promise<{ status: number; json: { code?: string; message?: string } }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/server/groups/${uniqueGroup("up-http")}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
    body,
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, json: (await res.json()) as { code?: string; message?: string } };
}
const fileBody = (bytes: number, rid: string) => JSON.stringify({ user: "bot", type: "file", request_id: rid, file: { name: "f.bin", content_type: "application/octet-stream", data: Buffer.alloc(bytes, 7).toString("base64") } });

t.test("server-API bodies take their turn under the node's upload budget, and count against the node buffer", async (t) => {
  const body = fileBody(450_000, "h"); // ~600 KB at 400 KiB/s with a 2 s burst: the first goes at once, the second waits ~0.9 s, the third's turn is 2.4 s away
  const bytes = Buffer.byteLength(body);
  const sentAt = performance.now();
  const all = await Promise.all([0, 1, 2, 3].map(async (i) => {
    const r = await post(small.port, body.replace('"h"', `"h${i}"`));
    return { ...r, ms: performance.now() - sentAt };
  }));
  const ok = all.filter((r) => r.status === 200);
  const refused = all.filter((r) => r.status !== 200);
  t.comment(`answers: ${all.map((r) => `${r.status} at ${r.ms.toFixed(0)} ms`).join(", ")}`);
  t.ok(refused.length >= 1, `bodies sent at once past the budget are refused (${refused.length} of 4)`);
  for (const r of refused) t.match(r, { status: 429, json: { code: "rate_limited", message: /uploads past this node's budget of 0.4 MiB\/s/ } });
  const earliest = earliestMs(ok.length * bytes, 400 * 1024);
  t.ok(Math.max(...ok.map((r) => r.ms)) >= earliest, `the last stored body was answered not before its turn (${earliest.toFixed(0)} ms)`);

  const tooMuch = await post(small.port, fileBody(3_400_000, "big")); // ~4.5 MB: more than the 4 MiB node buffer
  t.match(tooMuch, { status: 429, json: { code: "rate_limited", message: /holding too much data/ } }, "a body past MAX_NODE_BUFFER_BYTES is refused");
  t.ok(await eventually(async () => (await metric(small.port, "chat_buffer_bytes")) === 0, 5_000), "and the node holds nothing afterwards");
  t.equal(small.child.exitCode, null, "the node runs on");
});
