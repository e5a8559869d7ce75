// Connection health: a socket that cannot keep up is closed with 4008 (slow consumer) once more
// than MAX_BACKPRESSURE_BYTES wait for it, instead of the node buffering without bound or
// silently skipping its events; the other sockets get every event. An idle socket is pinged and
// closed when it does not answer; one that answers pings stays.
import net from "node:net";
import t from "tap";
import { connect, type ChatClient, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, metric, within } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { CLOSE_SLOW_CONSUMER } from "../../src/protocol/index.ts";

const MiB = 1024 * 1024;
const db = await freshDatabase(t);
// IDLE_TIMEOUT_S=30: uWS gives a socket 8 s (its ping timeout) after `end` before it drops it,
// and far longer before a client that only reads counts as idle.
const node = await startInProcess(t, {
  DATABASE_URL: db,
  MAX_BACKPRESSURE_BYTES: String(MiB),
  MAX_BODY_CHARS: "50000",
  MAX_PENDING_FRAMES: "1000",
  MAX_PENDING_BYTES: String(64 * MiB), // the writer pipelines 400 frames of 50 kB
  IDLE_TIMEOUT_S: "30",
  STORE_TIMEOUT_MS: "60000", // 400 pipelined creates of 50 kB outlast the 5 s default on a loaded machine
});
const idleNode = await startInProcess(t, { DATABASE_URL: db, IDLE_TIMEOUT_S: "8" });
const hitsOn = async (port: number, limit: string) => (await metric(port, `chat_limit_hits_total{limit="${limit}"}`)) ?? -1;
const hits = (limit: string) => hitsOn(node.port, limit);
const socketOf = (c: ChatClient) => (c.ws as unknown as { _socket: net.Socket })._socket;
const creates = (frames: Frame[]) => frames.flatMap((f) => (f.operation === "create" ? [f.seq] : []));

/** Whether `seqs` counts up by one from its first element. */
const contiguous = (seqs: number[]) => seqs.every((s, i) => i === 0 || s === seqs[i - 1]! + 1);

t.test("a subscriber that stops reading is closed with 4008; everyone else gets every event", async (t) => {
  const slow = await connect(t, node.port, "slow", { user: "slow" });
  const reader = await connect(t, node.port, "slow", { user: "reader" });
  const writer = await connect(t, node.port, "slow", { user: "writer" });
  socketOf(slow).pause(); // the client stops reading: its kernel buffers fill, then the node's

  // 400 events of ~50 kB: far more than the kernel buffers (a few MiB) plus the 1 MiB limit.
  const N = 400;
  const body = "x".repeat(50_000);
  for (let i = 0; i < N; i++) writer.send({ operation: "create", type: "text", body, request_id: `w${i}` });
  const acked = (async () => {
    const refused: unknown[] = [];
    for (let i = 0; i < N; i++) {
      const f = await writer.next((f) => "request_id" in f && f.request_id === `w${i}`, 60_000);
      if (f.operation !== "ack") refused.push(f);
    }
    return refused;
  })();
  t.ok(await eventually(async () => (await hits("slow_consumer")) === 1, 60_000), "the slow socket is closed as a slow consumer");
  socketOf(slow).resume();
  const closed = await within(slow.closed, 10_000, "the slow socket's close");
  t.equal(closed.code, CLOSE_SLOW_CONSUMER, "with close code 4008 after what was already buffered");
  t.match(closed.reason, /slow consumer/);
  const got = creates(slow.received);
  t.ok(got.length < N && contiguous(got), `it got a gap-free prefix (${got.length} of ${N}); it resumes with ?since=${got.at(-1)}`);

  t.same(await acked, [], "every create was acknowledged");
  for (const [name, c] of [["reader", reader], ["writer", writer]] as const) {
    const seqs: number[] = [];
    while (seqs.length < N) {
      const f = await c.next((f) => f.operation === "create", 30_000);
      if (f.operation === "create") seqs.push(f.seq);
    }
    t.ok(contiguous(seqs), `${name} got all ${N} events, in order with no gap`);
  }
  t.equal(await metric(node.port, "chat_connections"), 2, "the node let go of the slow socket");
});

t.test("a client that floods its own socket with answers it does not read is closed too, with 4008", async (t) => {
  // Bodies of control characters, which JSON escapes to 6 bytes each: a history page of 100 is
  // 30 MB, more than the kernel buffers take, so one answer leaves ~20 MB queued in uWS. The
  // 4008 close frame must still fit under uWS's own limit, or uWS drops it and the client
  // sees 1006. And the client reads its backlog only after uWS's close timeout (8 s here) has
  // passed: uWS drops a socket that long after `end`, so the node waits for the queue to drain
  // before it ends the socket (CI saw 1006 here whenever the loaded machine was that slow).
  const writer = await connect(t, node.port, "flood", { user: "writer" });
  const body = "\u0001".repeat(50_000);
  // One at a time: the writer hears its own 300 kB events, and this node closes at 1 MiB queued.
  for (let i = 0; i < 100; i++) {
    writer.send({ operation: "create", type: "text", body, request_id: `f${i}` });
    await writer.next((f) => f.operation === "ack" && f.request_id === `f${i}`, 60_000);
  }
  await writer.close();

  const c = await connect(t, node.port, "flood", { user: "greedy" });
  socketOf(c).pause();
  for (let i = 0; i < 4; i++) c.send({ operation: "history", limit: 100, request_id: `h${i}` });
  t.ok(await eventually(async () => (await hits("slow_consumer")) === 2, 30_000), "closed as a slow consumer");
  await new Promise((r) => setTimeout(r, 10_000));
  socketOf(c).resume();
  t.equal((await within(c.closed, 20_000, "close")).code, CLOSE_SLOW_CONSUMER, "4008, although it read its backlog 10 s later");
});

t.test("an idle socket that does not answer pings is closed; one that does stays", async (t) => {
  const alive = await connect(t, idleNode.port, "idle", { user: "alive" });
  const raw = net.connect(idleNode.port, "127.0.0.1");
  t.teardown(() => void raw.destroy());
  raw.write(
    "GET /ws/chat/idle/?user=mute HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  let received = "";
  raw.on("data", (d: Buffer) => (received += d.toString("latin1")));
  const started = Date.now();
  await within(new Promise((r) => raw.once("close", r)), 20_000, "the mute socket's close");
  t.match(received, /^HTTP\/1\.1 101/, "it was upgraded");
  t.match(received, /\x89\x00/, "and pinged before being closed");
  t.ok(Date.now() - started <= 16_000, `closed after ${Date.now() - started} ms (IDLE_TIMEOUT_S=8)`);
  t.ok(await eventually(async () => (await hitsOn(idleNode.port, "idle_timeout")) === 1), "counted as idle_timeout");
  await new Promise((r) => setTimeout(r, 4_000));
  t.match(await alive.request({ operation: "typing", typing_status: "typing" }), { operation: "ack" }, "the socket that answers pings is still open");
});
