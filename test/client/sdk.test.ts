// The client SDK against real servers: every operation resolves with its ack or rejects with the
// server's error; events arrive as typed callbacks exactly once and in seq order; the typing
// helper throttles; and across a server killed mid-conversation and restarted, the SDK
// reconnects, resumes with since and retries its unanswered creates without losing or
// duplicating a message. A fake server covers what a correct server never does (silence, gaps).
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import WebSocket, { WebSocketServer } from "ws";
import { attachmentPath, ChatRequestError, type ConnectionState, type WebSocketLike } from "../../src/client/index.ts";
import { spawnNode, startInProcess } from "../helpers/node.ts";
import { freshDatabase } from "../helpers/services.ts";
import { client, createEvent, recorder, until } from "../helpers/sdk.ts";

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function rejection(p: Promise<unknown>): Promise<ChatRequestError> {
  return p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (err: unknown) => {
      if (!(err instanceof ChatRequestError)) throw err;
      return err;
    },
  );
}

const db = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: db });
const base = `http://127.0.0.1:${node.port}`;

t.test("every operation resolves with its ack and events arrive as typed callbacks", async (t) => {
  const group = "sdk-ops";
  const alice = client(t, { url: base, group, user: "alice" });
  const bob = client(t, { url: base, group, user: "bob" });
  await Promise.all([alice.connect(), bob.connect()]);
  t.equal(alice.state, "live");
  const seenByBob = recorder(bob);
  const created: string[] = [];
  bob.on("created", (m, e) => created.push(`${e.seq}:${m.user}:${m.body}`));

  const hello = await alice.send("hello");
  t.match(hello, { operation: "ack", message_id: String, seq: 1 }, "send resolves with the ack");
  await until("bob's created callback", () => created.length === 1);
  t.same(created, ["1:alice:hello"]);
  t.match(bob.message(hello.message_id!), { user: "alice", body: "hello", deleted: false }, "the message is in bob's list");

  const replied: string[] = [];
  alice.on("replied", (m) => replied.push(`${m.user}:${m.reply_to}:${m.body}`));
  const re = await bob.reply(hello.message_id!, "hi alice");
  t.match(re, { seq: 2 });
  await until("alice's replied callback", () => replied.length === 1);
  t.same(replied, [`bob:${hello.message_id}:hi alice`]);

  const updated: string[] = [];
  bob.on("updated", (m) => updated.push(m.body!));
  t.match(await alice.edit(hello.message_id!, "hello, edited"), { message_id: hello.message_id, seq: 3 });
  await until("bob's updated callback", () => updated.length === 1);
  t.equal(bob.message(hello.message_id!)!.body, "hello, edited");
  t.type(bob.message(hello.message_id!)!.updated, "string", "updated is set");

  const seen: string[] = [];
  alice.on("seen", (e) => seen.push(`${e.user}:${e.message_id}`));
  const ack = await bob.seen(hello.message_id!);
  t.type(ack.seen_at, "string", "seen resolves with seen_at");
  await until("alice's seen callback", () => seen.length === 1);
  t.ok(alice.seenBy(hello.message_id!).has("bob"), "seenBy knows bob saw it");

  const forbidden = await rejection(bob.edit(hello.message_id!, "not mine"));
  t.match(forbidden, { code: "forbidden", requestId: /.+/ }, "an error frame rejects with its code and request_id");
  t.match(await rejection(alice.delete("no-such-message")), { code: "not_found" });
  t.match(await rejection(alice.request("typing", { typing_status: "NOT VALID" })), { code: "bad_request", message: /typing_status/ }, "the protocol schema refuses a bad frame before it is sent");
  t.match(await rejection(alice.send("x".repeat(4001))), { code: "too_large" });

  const picture = Buffer.from("not really a png");
  const pic = await alice.send("a picture", { file: { name: "p.png", content_type: "image/png", data: picture.toString("base64") } });
  await until("the picture at bob", () => bob.message(pic.message_id!) !== undefined);
  const m = bob.message(pic.message_id!)!;
  t.equal(m.type, "image", "an image/* file makes an image message");
  const path = attachmentPath(m);
  t.equal(path, `/files/${m.attachment!.id}`);
  const res = await fetch(base + path);
  t.same(Buffer.from(await res.arrayBuffer()), picture, "the attachment URL serves the bytes");

  const deleted: string[] = [];
  bob.on("deleted", (e, tomb) => deleted.push(`${e.message_id}:${tomb?.deleted}:${tomb?.body}`));
  await alice.delete(hello.message_id!);
  await until("bob's deleted callback", () => deleted.length === 1);
  t.same(deleted, [`${hello.message_id}:true:null`], "deleted comes with the tombstone");

  t.same(seenByBob.seqs(), range(1, 5), "bob got every stored event once, in seq order");
  t.equal(bob.lastSeq, 5);

  const carol = client(t, { url: base, group, user: "carol" });
  const histories: boolean[] = [];
  carol.on("history", (_page, reset) => histories.push(reset));
  await carol.connect();
  await until("carol's history", () => histories.length === 1);
  t.same(carol.messages.map((x) => [x.user, x.body, x.deleted]), [["alice", null, true], ["bob", "hi alice", false], ["alice", "a picture", false]], "a new client starts from the history, tombstones included");
  t.same(histories, [true]);
  t.equal(carol.hasMore, false);
  t.equal(carol.lastSeq, null, "no seq seen yet");
  await bob.send("for carol");
  await until("carol's first live event", () => carol.lastSeq === 6);
  t.equal(carol.messages.at(-1)!.body, "for carol");
});

t.test("loadOlder pages back through history into messages", async (t) => {
  const group = "sdk-older";
  const writer = client(t, { url: base, group, user: "w" });
  await writer.connect();
  for (let i = 1; i <= 25; i++) await writer.send(`m${i}`);
  const reader = client(t, { url: base, group, user: "r", historyLimit: 10 });
  await reader.connect();
  await until("the first page", () => reader.messages.length === 10);
  t.equal(reader.hasMore, true);
  await reader.loadOlder();
  await reader.loadOlder();
  t.same(reader.messages.map((m) => m.body), range(1, 25).map((i) => `m${i}`), "oldest first, no repeats");
  t.equal(reader.hasMore, false);
});

t.test("the typing helper throttles, stops after inactivity and on send, and tracks who types", async (t) => {
  const group = "sdk-typing";
  const alice = client(t, { url: base, group, user: "alice", typing: { throttleMs: 250, idleMs: 300 } });
  const bob = client(t, { url: base, group, user: "bob", typing: { expireMs: 2_000 } });
  await Promise.all([alice.connect(), bob.connect()]);
  const got: string[] = [];
  bob.on("typing", (e) => got.push(`${e.user}:${e.typing_status}`));
  const typers: string[][] = [];
  bob.on("typers", (u) => typers.push(u));
  const aliceSees: string[][] = [];
  alice.on("typers", (u) => aliceSees.push(u));

  const started = Date.now();
  while (Date.now() - started < 700) {
    alice.typing();
    await sleep(40);
  }
  await until("not_typing after inactivity", () => got.at(-1) === "alice:not_typing", 2_000);
  const typing = got.filter((g) => g === "alice:typing").length;
  t.ok(typing >= 2 && typing <= 4, `about one typing frame per 250 ms over 700 ms of keystrokes, not one per keystroke (${typing})`);
  t.same(typers[0], ["alice"], "bob sees alice typing");
  t.same(typers.at(-1), [], "and then not");
  t.same(aliceSees, [], "alice's own typing is not listed to her");

  got.length = 0;
  alice.typing();
  await alice.send("done");
  await until("the not_typing sent before the message", () => got.length === 2);
  t.same(got, ["alice:typing", "alice:not_typing"], "sending a message stops typing at once");
});

t.test("without an answer an operation times out; close rejects what is waiting", async (t) => {
  const silent = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  t.teardown(() => new Promise<void>((r) => silent.close(() => r())));
  await new Promise((r) => silent.once("listening", r));
  const port = (silent.address() as { port: number }).port;
  const c = client(t, { url: `ws://127.0.0.1:${port}`, group: "g", user: "u", historyLimit: 0, timeoutMs: 300 });
  await c.connect();
  const started = Date.now();
  t.match(await rejection(c.send("anyone?")), { code: "timeout", message: /within 300 ms/ });
  t.ok(Date.now() - started >= 290, "after timeoutMs");

  const offline = client(t, { url: "ws://127.0.0.1:1", group: "g", user: "u", queueTimeoutMs: 400 });
  void offline.connect().catch(() => {});
  const queued = offline.send("into the void");
  await until("a reconnect attempt", () => offline.state === "reconnecting");
  t.match(await rejection(queued), { code: "timeout", message: /400 ms/ }, "an operation waits offline at most queueTimeoutMs");
  const waiting = offline.send("again");
  const connected = offline.connect();
  offline.close();
  t.match(await rejection(waiting), { code: "closed" });
  t.match(await rejection(connected), { code: "closed" }, "connect() rejects once closed");
  t.equal(offline.state, "closed");
});

// The fake server speaks just enough protocol to send events with chosen seqs.

t.test("repeats are dropped by seq, and a gap makes the client reconnect and have it replayed", async (t) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  await new Promise((r) => server.once("listening", r));
  const urls: string[] = [];
  server.on("connection", (ws, req) => {
    urls.push(req.url!);
    if (urls.length === 1) {
      // Live: 1, 2, a repeat of 2, then 4 (3 is missing).
      for (const s of [1, 2, 2, 4]) ws.send(createEvent(s));
    } else {
      // Asked to resume from 2: replay 3 and 4 (and, overlapping, 2 again), then resumed.
      for (const s of [2, 3, 4]) ws.send(createEvent(s));
      ws.send(JSON.stringify({ operation: "resumed", group: "g", seq: 4 }));
      ws.send(createEvent(5));
    }
  });
  const port = (server.address() as { port: number }).port;
  const c = client(t, { url: `ws://127.0.0.1:${port}`, group: "g", user: "u", historyLimit: 0 });
  const rec = recorder(c);
  await c.connect();
  await until("event 5", () => c.lastSeq === 5);
  t.same(rec.seqs(), [1, 2, 3, 4, 5], "each seq once, in order");
  t.same(urls, ["/ws/chat/g/?user=u", "/ws/chat/g/?user=u&since=2"], "reconnected with since = the last seq delivered");
  t.same(c.messages.map((m) => m.id), ["m1", "m2", "m3", "m4", "m5"]);
});

/** A `ws` socket that can lose its connection, or the next ack of an operation with it, like a network would. */
class LossySocket implements WebSocketLike {
  static dropNextAckOf: string | null = null;
  private static readonly open = new Set<LossySocket>();
  static dropAll(): void {
    for (const s of LossySocket.open) s.inner.terminate();
  }
  private readonly inner: WebSocket;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  private readonly sentOps = new Map<string, string>();

  constructor(url: string) {
    this.inner = new WebSocket(url);
    this.inner.onopen = (e) => this.onopen?.(e);
    LossySocket.open.add(this);
    this.inner.onclose = (e) => {
      LossySocket.open.delete(this);
      this.onclose?.(e);
    };
    this.inner.onerror = (e) => this.onerror?.(e);
    this.inner.onmessage = (e) => {
      const f = JSON.parse(String(e.data)) as { operation: string; request_id?: string };
      if (f.operation === "ack" && LossySocket.dropNextAckOf !== null && this.sentOps.get(f.request_id!) === LossySocket.dropNextAckOf) {
        LossySocket.dropNextAckOf = null;
        this.inner.terminate(); // the ack is lost with the connection; the effect is stored
        return;
      }
      this.onmessage?.(e);
    };
  }

  get readyState(): number {
    return this.inner.readyState;
  }

  send(data: string): void {
    const f = JSON.parse(data) as { operation: string; request_id?: string };
    if (f.request_id) this.sentOps.set(f.request_id, f.operation);
    this.inner.send(data);
  }

  close(code?: number, reason?: string): void {
    this.inner.close(code, reason);
  }
}

t.test("unavailable and rate_limited answers are retried after a backoff with the same request_id", async (t) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  await new Promise((r) => server.once("listening", r));
  const seen: string[] = [];
  server.on("connection", (ws) => {
    ws.on("message", (data) => {
      const f = JSON.parse(String(data)) as { operation: string; request_id: string };
      seen.push(`${f.operation}:${f.request_id}`);
      const n = seen.length;
      if (n === 1) ws.send(JSON.stringify({ operation: "error", code: "unavailable", message: "database down", request_id: f.request_id }));
      else if (n === 2) ws.send(JSON.stringify({ operation: "error", code: "rate_limited", message: "slow down", request_id: f.request_id }));
      else if (n === 3) ws.send(JSON.stringify({ operation: "ack", group: "g", request_id: f.request_id, message_id: "m1", seq: 1 }));
      else ws.send(JSON.stringify({ operation: "error", code: "forbidden", message: "no", request_id: f.request_id }));
    });
  });
  const port = (server.address() as { port: number }).port;
  const c = client(t, { url: `ws://127.0.0.1:${port}`, group: "g", user: "u", historyLimit: 0 });
  await c.connect();
  t.match(await c.send("hello"), { message_id: "m1", seq: 1 }, "the third attempt is acknowledged");
  t.equal(new Set(seen).size, 1, "all three attempts carried one request_id");
  t.equal(seen.length, 3);
  t.match(await rejection(c.send("again")), { code: "forbidden" }, "other errors reject at once");
});

t.test("a server that lost the stream (since beyond its last seq) makes the client start over from its history", async (t) => {
  const other = await startInProcess(t, { DATABASE_URL: await freshDatabase(t) });
  const group = "sdk-reset";
  let target = node.port;
  const alice = client(t, { url: () => `http://127.0.0.1:${target}`, group, user: "alice", WebSocket: LossySocket });
  await alice.connect();
  for (const b of ["a", "b", "c"]) await alice.send(b);
  await until("seq 3", () => alice.lastSeq === 3);

  const writer = client(t, { url: `http://127.0.0.1:${other.port}`, group, user: "w" });
  await writer.connect();
  await writer.send("only message here");
  const errors: string[] = [];
  alice.on("error", (e) => errors.push(e.code));
  const resets: boolean[] = [];
  alice.on("history", (_p, reset) => resets.push(reset));
  // The same URL now reaches a server with another database (as after a reset of its data).
  target = other.port;
  LossySocket.dropAll();
  await until("the reset history", () => resets.length === 1);
  t.same(errors, ["bad_request"], "the refused since is reported");
  t.same(alice.messages.map((m) => m.body), ["only message here"], "the list is the new server's history");
  t.equal(alice.state, "live");
  await writer.send("after");
  await until("a live event of the new stream", () => alice.messages.length === 2);
  t.equal(alice.lastSeq, 2, "seqs of the new stream are not mistaken for repeats");
});

t.test("an operation whose ack was lost with the connection is retried with its request_id and stored once", async (t) => {
  const group = "sdk-lost-ack";
  const alice = client(t, { url: base, group, user: "alice", WebSocket: LossySocket });
  const bob = client(t, { url: base, group, user: "bob" });
  await Promise.all([alice.connect(), bob.connect()]);
  const watch = recorder(bob);
  const states: ConnectionState[] = [];
  alice.on("state", (s) => states.push(s.state));

  await alice.send("before");
  LossySocket.dropNextAckOf = "create";
  const ack = await alice.send("only once");
  t.equal(LossySocket.dropNextAckOf, null, "the first ack was dropped");
  t.same(states, ["reconnecting", "connecting", "syncing", "live"], "the client reconnected and resumed");
  t.match(ack, { message_id: String, seq: 2 }, "the retry answers the original ack");
  const after = await alice.send("after");
  t.equal(after.seq, 3, "the retry took no seq");

  LossySocket.dropNextAckOf = "delete";
  t.match(await alice.delete(ack.message_id!), { message_id: ack.message_id }, "a retried delete that went through the first time resolves too");

  await until("bob's events", () => watch.seqs().length === 4);
  t.same(watch.bodies(), ["before", "only once", "after"], "bob saw the message once");
  const stored = (await bob.history({ limit: 100 })).messages.map((m) => [m.body, m.deleted]);
  t.same(stored, [["before", false], [null, true], ["after", false]], "the server stored it once");
  t.same(alice.messages.map((m) => m.body), ["before", null, "after"]);
});

t.test("a server killed mid-conversation and restarted: reconnect, resume, no loss, no duplicate", async (t) => {
  const env = { DATABASE_URL: await freshDatabase(t) };
  let current = await spawnNode(t, env);
  const url = () => `http://127.0.0.1:${current.port}`;
  const group = "sdk-restart";
  const opts = { url, group, reconnect: { baseMs: 100, maxMs: 800 }, queueTimeoutMs: 60_000 };
  const alice = client(t, { ...opts, user: "alice" });
  const bob = client(t, { ...opts, user: "bob" });
  await Promise.all([alice.connect(), bob.connect()]);
  const atBob = recorder(bob);
  const atAlice = recorder(alice);
  const aliceStates: ConnectionState[] = [];
  alice.on("state", (s) => aliceStates.push(s.state));

  // A conversation under way.
  for (let i = 1; i <= 10; i++) await (i % 2 ? alice : bob).send(`warm-up ${i}`);

  // Alice keeps sending without waiting; the server is killed after her fifth message of the
  // burst, some frames in flight (stored or not, acked or not), and her later ones are sent
  // while it is down. Bob sends one while it is down too.
  const sends: Promise<{ seq?: number; message_id?: string }>[] = [];
  for (let i = 1; i <= 20; i++) {
    sends.push(alice.send(`burst ${i}`));
    if (i === 5) current.child.kill("SIGKILL");
    if (i === 12) sends.push(bob.send("bob while down"));
    await sleep(15);
  }
  await current.exited;
  await until("both clients noticing", () => alice.state !== "live" && bob.state !== "live");
  t.ok(alice.outbox > 0, "alice has operations waiting in her outbox");

  current = await spawnNode(t, env);
  const acks = await Promise.all(sends);
  t.equal(acks.length, 21, "every send resolved");
  t.equal(new Set(acks.map((a) => a.message_id)).size, 21, "each with its own message");
  const total = 10 + 21;
  t.same(acks.map((a) => a.seq!).sort((a, b) => a - b), range(11, total), "the acks cover seqs 11..31, none twice");

  await until("every event at both clients", () => atBob.seqs().length === total && atAlice.seqs().length === total, 15_000);
  for (const [name, rec] of [["bob", atBob], ["alice", atAlice]] as const) {
    t.same(rec.seqs(), range(1, total), `${name} got seqs 1..${total} exactly once, in order`);
    const bodies = rec.bodies();
    t.equal(new Set(bodies).size, total, `${name} saw no message twice`);
    t.same(range(1, 20).filter((i) => !bodies.includes(`burst ${i}`)), [], `${name} saw every message of the burst`);
  }
  const burstOrder = atBob.bodies().filter((b) => b!.startsWith("burst"));
  t.same(burstOrder, range(1, 20).map((i) => `burst ${i}`), "alice's messages kept her order");
  const history = await bob.history({ limit: 100 });
  t.equal(history.messages.length, total, "the database holds each message once");
  t.ok(aliceStates.includes("reconnecting") && aliceStates.includes("syncing"), `alice went offline and resumed (${aliceStates.join(" > ")})`);
  t.equal(aliceStates.at(-1), "live");
  t.equal(alice.outbox, 0, "her outbox is empty");
});
