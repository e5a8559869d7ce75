// A resume whose client stops reading cannot make the node hold events without bound: the live
// events held for it while its replay waits count against MAX_HELD_BYTES, and past it the socket
// is closed with 4008 (it reconnects with ?since= and misses nothing). Checked at a small budget
// and at the default, against real node processes, with clients that keep talking (typing) but
// never read.
import type net from "node:net";
import t from "tap";
import { connect, type ChatClient } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup, within } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, requireRedis } from "../helpers/services.ts";
import { CLOSE_SLOW_CONSUMER } from "../../src/protocol/index.ts";
import { loadConfig } from "../../src/config/env.ts";

await requireRedis();
const db = await freshDatabase(t);
const DEFAULT_HELD = loadConfig({}).MAX_HELD_BYTES;
const SMALL_HELD = 256 * 1024;
// Hundreds of 24 kB creates, 100 in flight: on a loaded machine they outlast the 5 s store default.
const env = { DATABASE_URL: db, REDIS_URL, STORE_TIMEOUT_MS: "60000" };
const [small, byDefault] = await Promise.all([spawnNode(t, { ...env, MAX_HELD_BYTES: String(SMALL_HELD) }), spawnNode(t, env)]);
const socketOf = (c: ChatClient) => (c.ws as unknown as { _socket: net.Socket })._socket;
const heldHits = (port: number) => metric(port, `chat_limit_hits_total{limit="held_bytes"}`);
// Control characters are 6 bytes each in JSON: at the default MAX_BODY_CHARS an event is ~24 kB.
const BODY = "\u0001".repeat(4000);

/** Creates `n` messages, 100 in flight at a time; resolves when all are acked. */
async function create(c: ChatClient, n: number, tag: string): Promise<void> {
  for (let from = 0; from < n; from += 100) {
    const to = Math.min(n, from + 100);
    for (let i = from; i < to; i++) c.send({ operation: "create", type: "text", body: BODY, request_id: `${tag}${i}` });
    for (let i = from; i < to; i++) {
      const f = await c.next((f) => "request_id" in f && f.request_id === `${tag}${i}`, 60_000);
      if (f.operation !== "ack") throw new Error(`create ${tag}${i} refused: ${JSON.stringify(f)}`);
    }
  }
}

t.test("a stuck resume is cut off at its byte budget with 4008", async (t) => {
  const group = uniqueGroup("stuck");
  const writer = await connect(t, byDefault.port, group, { user: "writer" });
  await create(writer, 300, "r"); // a 7 MB replay: more than a socket that does not read takes

  const stuck = await Promise.all([small, byDefault].map(async (node) => {
    const c = await connect(t, node.port, group, { user: "phone", since: "0" });
    socketOf(c).pause(); // it stops reading, but keeps talking below
    return c;
  }));
  for (const node of [small, byDefault]) {
    t.ok(await eventually(async () => (await metric(node.port, "chat_resuming_subscriptions")) === 1, 10_000), "the replay is under way");
  }

  // Live events while the replays wait: 24 kB each, until the default budget is passed too.
  const needed = Math.ceil(DEFAULT_HELD / 24_000) + 50;
  let sent = 0;
  while (sent < needed && (await heldHits(byDefault.port)) !== 1) {
    for (const c of stuck) if (c.ws.readyState === c.ws.OPEN) c.send({ operation: "typing", typing_status: "typing" });
    await create(writer, 50, `l${sent}-`);
    sent += 50;
    if (sent === 50) t.ok(await eventually(async () => (await heldHits(small.port)) === 1, 5_000), `cut off at MAX_HELD_BYTES=${SMALL_HELD} after < 50 events`);
  }
  t.ok(await eventually(async () => (await heldHits(byDefault.port)) === 1, 10_000), `cut off at the default MAX_HELD_BYTES=${DEFAULT_HELD} after ${sent} live events`);
  t.ok(sent * 24_000 >= DEFAULT_HELD, "not before the default budget was reached");

  for (const [i, c] of stuck.entries()) {
    socketOf(c).resume();
    const closed = await within(c.closed, 30_000, "the stuck socket's close");
    t.equal(closed.code, CLOSE_SLOW_CONSUMER, `${i === 0 ? "small" : "default"} budget: closed with 4008`);
    t.match(closed.reason, /held while resuming/);
    const seqs = c.received.flatMap((f) => (f.operation === "create" ? [f.seq] : []));
    t.ok(seqs.every((s, k) => s === k + 1), `it got a gap-free prefix of the replay (${seqs.length} events) to resume from`);
  }
  for (const node of [small, byDefault]) {
    t.ok(await eventually(async () => (await metric(node.port, "chat_buffer_bytes")) === 0, 5_000), "the held events are released");
    t.equal(await metric(node.port, "chat_resuming_subscriptions"), 0);
    t.equal(node.child.exitCode, null, "the node runs on");
  }
});
