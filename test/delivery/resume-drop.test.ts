// A resume that ends early must end cleanly. A client that drops during a `?since=` replay (its
// connection reset, closed, or timed out while the replay waits for it to read) must not crash
// the node, and a socket that closes while it waits for this node to catch up must leave no
// resume state behind. Real node processes, real sockets that stop reading.
import t from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { spawnNode, startInProcess } from "../helpers/node.ts";
import { eventually, metric, statusOf, uniqueGroup, within } from "../helpers/probe.ts";
import { neverReading } from "../helpers/raw-socket.ts";
import { freshDatabase } from "../helpers/services.ts";

const db = await freshDatabase(t);
const stored = (f: Frame) => f.operation === "create";

/** Sends `n` creates of `body`, 100 at a time (under MAX_PENDING_FRAMES), and waits for every ack. */
async function fill(c: ChatClient, n: number, body: string, tag: string): Promise<void> {
  for (let from = 0; from < n; from += 100) {
    const to = Math.min(n, from + 100);
    for (let i = from; i < to; i++) c.send({ operation: "create", type: "text", body, request_id: `${tag}${i}` });
    for (let i = from; i < to; i++) t.match(await c.next((f) => "request_id" in f && f.request_id === `${tag}${i}`, 60_000), { operation: "ack" });
  }
}

t.test("a client that drops during a replay does not crash the node", async (t) => {
  // The idle timeout at its smallest, so a socket that never reads is also closed by it in time.
  // (Hundreds of 24 kB creates, 100 in flight, outlast the 5 s store default on a loaded machine.)
  const node = await spawnNode(t, { DATABASE_URL: db, IDLE_TIMEOUT_S: "8", STORE_TIMEOUT_MS: "60000" });
  const group = uniqueGroup("drop");
  const writer = await connect(t, node.port, group, { user: "writer" });
  // 300 messages at the default MAX_BODY_CHARS of control characters (6 bytes each in JSON):
  // a 7 MB replay, far more than a socket that does not read can take.
  const N = 300;
  await fill(writer, N, "\u0001".repeat(4000), "w");

  const path = `/ws/chat/${group}/?user=phone&since=0`;
  const [reset, fin, silent] = await Promise.all([0, 1, 2].map(() => neverReading(t, node.port, path)));
  t.ok(await eventually(async () => (await metric(node.port, "chat_resuming_subscriptions")) === 3, 10_000), "three replays under way");
  await new Promise((r) => setTimeout(r, 1_500)); // each fills its socket and waits for a drain
  reset!.resetAndDestroy(); // the phone loses signal: RST
  fin!.end(); // or closes its side properly
  t.ok(await eventually(async () => (await metric(node.port, "chat_resuming_subscriptions")) === 1, 10_000), "the dropped replays are gone");
  // The third never reads and never answers a ping: the idle timeout closes it mid-replay.
  t.ok(await eventually(async () => (await metric(node.port, `chat_limit_hits_total{limit="idle_timeout"}`)) === 1, 30_000), "the silent one is closed by the idle timeout");
  void silent;

  t.equal(node.child.exitCode, null, "the node is still running");
  t.equal(await statusOf(node.port, "/healthz"), 200);
  t.equal(await metric(node.port, "chat_resuming_subscriptions"), 0, "no resume state is left");
  t.equal(await metric(node.port, "chat_buffer_bytes"), 0, "nothing is held for them");
  // And the node still replays in full to a client that reads.
  const reader = await connect(t, node.port, group, { user: "reader", since: "0" });
  const seqs: number[] = [];
  for (let i = 0; i < N; i++) {
    const f = await reader.next(stored, 30_000);
    if (f.operation === "create") seqs.push(f.seq);
  }
  t.same(seqs, Array.from({ length: N }, (_, i) => i + 1), "events 1..N in order");
  t.match(await reader.next(), { operation: "resumed", seq: N }, "a reader still gets the whole replay");
  t.notOk(node.stderr.some((l) => /Invalid access|uncaught/i.test(l)), "nothing on stderr about a closed socket");
});

t.test("a socket closed while waiting to go live leaves no resume state", async (t) => {
  // Two nodes on one database with in-process buses: B's writes are stored, but A only learns of
  // them when it repairs a gap, so a client resuming on A from B's last seq is ahead of A and
  // waits, parked, for A to catch up.
  const a = await spawnNode(t, { DATABASE_URL: db });
  const b = await startInProcess(t, { DATABASE_URL: db });
  const group = uniqueGroup("park");
  const onA = await connect(t, a.port, group, { user: "alice" });
  t.match(await onA.request({ operation: "create", type: "text", body: "one" }), { seq: 1 });
  await onA.next(stored);
  const onB = await connect(t, b.port, group, { user: "bob" });
  t.match(await onB.request({ operation: "create", type: "text", body: "two" }), { seq: 2 });

  const parked = await connect(t, a.port, group, { user: "carol", since: "2" });
  t.match(await parked.next(), { operation: "resumed", seq: 2, group }, "nothing to replay on A");
  t.equal(await metric(a.port, "chat_resuming_subscriptions"), 1, "it waits for A to deliver seq 2");
  await within(parked.close(), 5_000, "close");
  t.ok(await eventually(async () => (await metric(a.port, "chat_resuming_subscriptions")) === 0, 5_000), "closing it removes its resume state");

  // A catches up (seq 3 reveals the gap, A reads seq 2): nothing may be handed to the closed socket.
  t.match(await onA.request({ operation: "create", type: "text", body: "three" }), { seq: 3 });
  t.match(await onA.next(stored), { seq: 2 });
  t.match(await onA.next(stored), { seq: 3 }, "A's own clients get 2 and 3 in order");
  await new Promise((r) => setTimeout(r, 300));
  t.equal(a.child.exitCode, null, "A is still running");
  t.notOk(a.logs.some((l) => l.msg === "could not read missed events; retrying"), "A's delivery did not fail");
  t.equal(await metric(a.port, "chat_buffer_bytes"), 0, "nothing is held");
});
