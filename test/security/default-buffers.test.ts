// The two byte budgets that bound what a node holds for its sockets, reached at their defaults
// with real frames against a real node process (byte-budgets.test.ts and stuck-resume.test.ts
// check the same rules at small values):
// - MAX_PENDING_BYTES (16 MiB per socket): files at the default MAX_FILE_BYTES (~7 MB frames)
//   held behind a database lock; the third does not fit and is refused with rate_limited, the
//   socket stays open and works once they are answered, another socket is served meanwhile.
// - MAX_NODE_BUFFER_BYTES (128 MiB per node): twenty sockets resume a group and stop reading
//   while the group goes on; the live events held for them fill the node's budget before any
//   one reaches its own MAX_HELD_BYTES, and the node closes the resume that overflows it with
//   4008 instead of holding more. A live reader of the group misses nothing, another user is
//   answered, and the node runs on.
import type net from "node:net";
import t from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup, untilReady, within } from "../helpers/probe.ts";
import { freshDatabase, sql } from "../helpers/services.ts";
import { loadConfig } from "../../src/config/env.ts";
import { CLOSE_SLOW_CONSUMER } from "../../src/protocol/index.ts";

t.setTimeout(240_000);
const defaults = loadConfig({});
const url = await freshDatabase(t);
// Writes held behind a lock (and hundreds of 24 kB creates on a loaded machine) outlast the 5 s store default.
const node = await spawnNode(t, { DATABASE_URL: url, STORE_TIMEOUT_MS: "60000" });
await untilReady(node.port);
const hits = async (limit: string) => (await metric(node.port, `chat_limit_hits_total{limit="${limit}"}`)) ?? -1;
const answerTo = (c: ChatClient, rid: string, ms = 60_000) => c.next((f) => "request_id" in f && f.request_id === rid, ms);
const socketOf = (c: ChatClient) => (c.ws as unknown as { _socket: net.Socket })._socket;

t.test("the defaults", async (t) => {
  t.equal(defaults.MAX_PENDING_BYTES, 16 * 1024 * 1024);
  t.equal(defaults.MAX_NODE_BUFFER_BYTES, 128 * 1024 * 1024);
  t.equal(defaults.MAX_HELD_BYTES, 8 * 1024 * 1024);
});

t.test("a socket's files awaiting an answer past the default MAX_PENDING_BYTES: the one that does not fit is rate_limited, the socket and the node go on", async (t) => {
  const group = uniqueGroup("pend-default");
  const c = await connect(t, node.port, group, { user: "sender" });
  const other = await connect(t, node.port, uniqueGroup("pend-other"), { user: "other" });
  t.match(await c.request({ operation: "create", type: "text", body: "the group exists" }), { operation: "ack" });
  const db = await sql(t, url);
  await db.query("BEGIN");
  await db.query(`SELECT * FROM "groups" WHERE "name" = $1 FOR UPDATE`, [group]); // every write of the group waits for it
  const before = await hits("pending_bytes");
  const file = Buffer.alloc(defaults.MAX_FILE_BYTES, 0x42).toString("base64");
  const frame = (rid: string) => JSON.stringify({ operation: "create", type: "file", file: { name: "f.bin", content_type: "application/octet-stream", data: file }, request_id: rid });
  const bytes = Buffer.byteLength(frame("f0"));
  t.ok(2 * bytes <= defaults.MAX_PENDING_BYTES && 3 * bytes > defaults.MAX_PENDING_BYTES, `two ${bytes}-byte frames fit in the default budget, three do not`);
  for (const rid of ["f0", "f1", "f2"]) c.send(frame(rid));
  const third = await answerTo(c, "f2");
  t.match(third, { operation: "error", code: "rate_limited", request_id: "f2", message: `more than ${defaults.MAX_PENDING_BYTES} bytes of frames awaiting an answer` }, "the third is refused at once, echoing its request_id");
  t.equal((await hits("pending_bytes")) - before, 1, "counted as pending_bytes");
  t.ok(((await metric(node.port, "chat_buffer_bytes")) ?? 0) >= 2 * bytes, "the node holds the two waiting files");
  t.match(await other.request({ operation: "create", type: "text", body: "not held up" }), { operation: "ack" }, "another socket is served meanwhile");
  await db.query("COMMIT");
  t.match(await answerTo(c, "f0"), { operation: "ack" }, "once the lock is gone the first is stored");
  t.match(await answerTo(c, "f1"), { operation: "ack" }, "and the second");
  t.match(await c.request({ operation: "create", type: "file", file: JSON.parse(frame("x")).file }, 60_000), { operation: "ack" }, "the socket takes files again");
  t.ok(await eventually(async () => (await metric(node.port, "chat_buffer_bytes")) === 0, 10_000), "and the node holds nothing for it");
  t.equal(node.child.exitCode, null, "the node runs on");
});

// Control characters are 6 bytes each in JSON: at the default MAX_BODY_CHARS an event is ~24 kB.
const BODY = "\u0001".repeat(4000);

/** Creates `n` messages, `batch` in flight; a create refused because the node's buffer is full is sent again. Resolves with how many were refused so. */
async function create(c: ChatClient, n: number, tag: string, batch: number): Promise<number> {
  let full = 0;
  for (let from = 0; from < n; from += batch) {
    const rids = Array.from({ length: Math.min(batch, n - from) }, (_, i) => `${tag}${from + i}`);
    while (rids.length > 0) {
      for (const rid of rids) c.send({ operation: "create", type: "text", body: BODY, request_id: rid });
      const refused: string[] = [];
      for (const rid of rids) {
        const f = await answerTo(c, rid);
        if (f.operation === "ack") continue;
        if (f.operation === "error" && f.code === "rate_limited" && /holding too much data/.test(f.message)) refused.push(rid);
        else throw new Error(`create ${rid} refused: ${JSON.stringify(f)}`);
      }
      full += refused.length;
      rids.splice(0, rids.length, ...refused);
    }
  }
  return full;
}

t.test("resumes that stop reading fill the default MAX_NODE_BUFFER_BYTES: the one that overflows it is closed with 4008, everyone else goes on", async (t) => {
  const group = uniqueGroup("node-buffer");
  const writer = await connect(t, node.port, group, { user: "writer" });
  await create(writer, 300, "r", 100); // a 7 MB replay: more than a socket that does not read takes
  const live = await connect(t, node.port, group, { user: "live" }); // reads everything, from seq 301
  const victim = await connect(t, node.port, uniqueGroup("node-buffer-victim"), { user: "victim" });
  const N = 20;
  const stuck = await Promise.all(Array.from({ length: N }, async (_, i) => {
    const c = await connect(t, node.port, group, { user: `phone-${i}`, since: "0" });
    socketOf(c).pause();
    return c;
  }));
  t.ok(await eventually(async () => (await metric(node.port, "chat_resuming_subscriptions")) === N, 30_000), `${N} replays under way`);
  const before = { node: await hits("node_buffer"), held: await hits("held_bytes") };
  // A resume cut off leaves the resuming set at once (its 4008 waits behind what its socket has not read).
  const cutOff = async () => N - ((await metric(node.port, "chat_resuming_subscriptions")) ?? N);

  // Each live event is held once per stuck resume: N x 24 kB. The node's 128 MiB are spent after
  // ~280 events, before any one resume holds its own 8 MiB (~350 events). Ten at a time, so the
  // writer stops within a few events of the first overflow (which frees that resume's ~6.7 MB).
  let peak = 0;
  let sent = 0;
  let writerRefused = 0;
  while ((await cutOff()) === 0 && sent < 600) {
    writerRefused += await create(writer, 10, `l${sent}-`, 10);
    sent += 10;
    peak = Math.max(peak, (await metric(node.port, "chat_buffer_bytes")) ?? 0);
  }
  const cut = await cutOff();
  t.ok(cut >= 1, `${cut} stuck resume(s) cut off after ${sent} live events (the writer's frames were refused ${writerRefused} times meanwhile)`);
  t.ok(sent * 24_000 * N >= defaults.MAX_NODE_BUFFER_BYTES * 0.9, "not before the held events came near the default budget");
  t.equal((await hits("node_buffer")) - before.node, cut + writerRefused, "each counted as node_buffer");
  t.equal((await hits("held_bytes")) - before.held, 0, "no resume reached its own MAX_HELD_BYTES: the node's budget was the one spent");
  t.ok(peak <= defaults.MAX_NODE_BUFFER_BYTES, `the node never held more than its budget (peak seen ${(peak / 2 ** 20).toFixed(1)} MiB)`);

  t.match(await victim.request({ operation: "create", type: "text", body: "still answered" }), { operation: "ack" }, "another user is answered");
  const seqs: number[] = [];
  while (seqs.length < sent) {
    const f: Frame = await live.next((f) => f.operation === "create", 30_000);
    if (f.operation === "create") seqs.push(f.seq);
  }
  t.same(seqs, Array.from({ length: sent }, (_, i) => 301 + i), "the live reader got every event, in order");

  // Every stuck socket reads again (frames counted, not parsed): the ones cut off find 4008 behind
  // their backlog; the others finish their replay and go live.
  const endings = stuck.map((c) => {
    const e: { frames: number; how: { code: number; reason: string } | null } = { frames: 0, how: null };
    c.ws.removeAllListeners("message");
    c.ws.on("message", () => e.frames++);
    void c.closed.then((how) => (e.how = how));
    socketOf(c).resume();
    return e;
  });
  const settled = await eventually(async () => endings.filter((e) => e.how !== null).length >= cut && (await metric(node.port, "chat_resuming_subscriptions")) === 0, 90_000, 250);
  t.ok(settled, "the others finished their replay");
  const closed = endings.filter((e) => e.how !== null);
  t.equal(closed.length, cut, `the ${cut} cut off were closed, no other`);
  for (const e of closed) t.match(e.how, { code: CLOSE_SLOW_CONSUMER, reason: /node's buffers are full/ }, `closed with 4008 after ${e.frames} frames`);
  for (const c of stuck) c.ws.terminate();
  t.ok(await eventually(async () => (await metric(node.port, "chat_buffer_bytes")) === 0, 20_000), "once they are gone the node holds nothing");
  t.equal(await metric(node.port, "chat_resuming_subscriptions"), 0);
  t.equal(node.child.exitCode, null, "the node runs on");
});
