// The SDK under the conditions phones live in: a gap that persists makes it back off instead of
// reconnecting in a tight loop; a socket whose open event comes late (a stalled event loop) is not
// timed out; operations made before a page reload are sent after it, with
// their original request_ids, and stored once; a body with a lone surrogate reads the same live,
// in the ack and in history; and a token that expires mid-conversation is renewed through the
// token function, the client resuming with since, losing and repeating nothing.
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import WebSocket, { WebSocketServer } from "ws";
import { type RestoredOperation, type StateChange, type WebSocketLike } from "../../src/client/index.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup, untilDatabaseWarm } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";
import { signToken, TEST_JWT_SECRET } from "../helpers/jwt.ts";
import { client, createEvent, FlakySocket, MemoryStorage, recorder, until } from "../helpers/sdk.ts";

const db = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: db });
// The node's first database work (pool, query compiler) blocks this process's event loop for
// seconds on a loaded machine: done here, not in the middle of the timing tests below.
await untilDatabaseWarm(node.port);
const base = `http://127.0.0.1:${node.port}`;

t.test("a gap that persists makes the client back off, not reconnect in a tight loop", async (t) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  await new Promise((r) => server.once("listening", r));
  let connections = 0;
  // Every connection is live at once and then sends an event two seqs ahead: a gap no replay fills.
  server.on("connection", (ws, req) => {
    connections++;
    const since = Number(new URL(req.url!, "http://x").searchParams.get("since") ?? 0);
    ws.send(JSON.stringify({ operation: "resumed", group: "g", seq: since }));
    ws.send(createEvent(since + 2));
  });
  const port = (server.address() as { port: number }).port;
  const c = client(t, { url: `ws://127.0.0.1:${port}`, group: "g", user: "u", historyLimit: 0, since: 0 });
  const delays: number[] = [];
  c.on("state", (s: StateChange) => {
    if (s.state === "reconnecting") delays.push(s.delayMs!);
  });
  const started = Date.now();
  void c.connect();
  // Six reconnects, however long the machine takes to make them.
  await until("six reconnects", () => delays.length >= 6, 20_000);
  const elapsed = Date.now() - started;
  c.close();
  // Backoff 50 ms doubling to 400, each delay half fixed, half random: 25-50, 50-100, 100-200,
  // then 200-400. A 0 ms loop would make six reconnects in a few milliseconds.
  t.ok(delays.every((d) => d >= 25), `every reconnect waited (${delays.join(", ")} ms)`);
  t.ok(delays.slice(3).every((d) => d >= 200), "the delay grew while the gap persisted");
  t.ok(elapsed >= 25 + 50 + 100 + 200 + 200, `six reconnects took at least the sum of their delays (${elapsed} ms)`);
  t.ok(connections <= delays.length + 1, `one connection per reconnect (${connections})`);
});

t.test("a socket already open when its connect timeout fires (the event loop stalled) is kept", async (t) => {
  // A socket whose open event is delivered late, as after a stalled event loop: open at once
  // (readyState 1), `onopen` only after the connect timeout has expired.
  const opened: string[] = [];
  class LateOpen implements WebSocketLike {
    readyState = 1;
    onopen: ((ev: unknown) => void) | null = null;
    onmessage: ((ev: { data: unknown }) => void) | null = null;
    onclose: ((ev: unknown) => void) | null = null;
    onerror: ((ev: unknown) => void) | null = null;
    constructor(url: string) {
      opened.push(url);
      setTimeout(() => this.onopen?.({}), 150);
    }
    send(): void {}
    close(): void {
      this.readyState = 3;
    }
  }
  const c = client(t, { url: "ws://127.0.0.1:1", group: "g", user: "u", historyLimit: 0, WebSocket: LateOpen, connectTimeoutMs: 50 });
  const states: string[] = [];
  c.on("state", (s) => states.push(s.state));
  void c.connect().catch(() => {});
  await until("live, or a second socket", () => c.state === "live" || opened.length > 1);
  t.same(states, ["connecting", "live"], "no reconnect: the open socket was not timed out");
  t.equal(opened.length, 1, "one socket");
});

t.test("operations made before a page reload are sent after it with their request_ids, and stored once", async (t) => {
  const group = uniqueGroup("reload");
  const storage = new MemoryStorage();
  const alice = client(t, { url: base, group, user: "alice", WebSocket: FlakySocket, outboxStorage: storage, queueTimeoutMs: 60_000 });
  const bob = client(t, { url: base, group, user: "bob" });
  t.teardown(() => void (FlakySocket.mode = "normal"));
  await Promise.all([alice.connect(), bob.connect()]);
  const atBob = recorder(bob);
  const first = await alice.send("before");
  t.equal(storage.map.size, 0, "nothing is saved once answered");

  // The network turns deaf: this create is stored by the server, its ack never arrives.
  FlakySocket.mode = "deaf";
  void alice.send("reached the server").catch(() => {});
  void alice.edit(first.message_id!, "before, edited").catch(() => {});
  await until("bob sees both", () => atBob.seqs().length === 3);
  // Then cut: this one never leaves the page.
  FlakySocket.mode = "cut";
  void alice.send("never left").catch(() => {});
  t.same(storage.entries().map((e) => e.operation), ["create", "update", "create"], "three operations wait in the saved outbox");

  // The page reloads: a new client finds what the old one saved (the old one is just gone).
  const reloaded = storage.copy();
  FlakySocket.mode = "normal";
  const other = client(t, { url: base, group, user: "bob", outboxStorage: reloaded, historyLimit: 0 });
  let othersRestored = 0;
  other.on("restored", (ops) => (othersRestored += ops.length));
  await other.connect();
  t.equal(othersRestored, 0, "another user's client does not take alice's operations");
  t.equal(reloaded.entries().length, 3, "and leaves them saved");
  const again = client(t, { url: base, group, user: "alice", outboxStorage: reloaded, since: atBob.seqs().at(-1)! });
  const restored: RestoredOperation[] = [];
  again.on("restored", (ops) => restored.push(...ops));
  const saved = storage.entries().map((e) => e.request_id);
  await again.connect();
  t.same(restored.map((r) => r.requestId), saved, "the reloaded client resends them with their original request_ids, in order");
  t.same(restored.map((r) => r.frame.body), ["reached the server", "before, edited", "never left"]);
  const acks = await Promise.all(restored.map((r) => r.result));
  t.same(acks.map((a) => a.seq), [2, 3, 4], "the stored ones answer their original seqs; the one that never left gets the next");
  await until("bob sees the last", () => atBob.seqs().length === 4);
  t.same(atBob.seqs(), [1, 2, 3, 4], "bob saw each operation once");
  t.same(atBob.texts(), ["before", "reached the server", "before, edited", "never left"]);
  const history = await bob.history({ limit: 10 });
  t.same(history.messages.map((m) => m.body), ["before, edited", "reached the server", "never left"], "the database holds each message once");
  t.equal(reloaded.map.size, 0, "the saved outbox is empty once everything is answered");
});

t.test("a body with a lone surrogate reads the same live, in the ack and in history", async (t) => {
  const group = uniqueGroup("surrogate");
  const alice = client(t, { url: base, group, user: "alice" });
  await alice.connect();
  // A raw socket, so the SDK's own normalisation is not what is tested here.
  const raw = new WebSocket(`ws://127.0.0.1:${node.port}/ws/chat/${group}/?user=bob`);
  t.teardown(() => raw.terminate());
  const frames: { operation: string; message?: { body: string }; request_id?: string }[] = [];
  raw.on("message", (d) => frames.push(JSON.parse(String(d))));
  await new Promise((r) => raw.once("open", r));
  raw.send(JSON.stringify({ operation: "create", type: "text", body: "A\ud800B", request_id: "r1" }));
  await until("the ack and the live event", () => frames.some((f) => f.operation === "ack") && frames.some((f) => f.operation === "create"));
  const live = frames.find((f) => f.operation === "create")!.message!.body;
  t.equal(live, "A\ufffdB", "the live event carries U+FFFD for the lone surrogate");
  const stored = (await alice.history({ limit: 10 })).messages.map((m) => m.body);
  t.same(stored, [live], "history reads what was broadcast");
  await until("alice's live copy", () => alice.messages.length === 1);
  t.equal(alice.messages[0]!.body, live);
  // Through the SDK: the same text goes out, and an edit too.
  const ack = await alice.send("\udc00 x \ud83d");
  await until("alice's own event", () => alice.messages.length === 2);
  t.equal(alice.message(ack.message_id!)!.body, "\ufffd x \ufffd");
  await alice.edit(ack.message_id!, "ok \ud83d\ude00 \ud83d");
  await until("the edit", () => alice.message(ack.message_id!)!.body !== "\ufffd x \ufffd");
  t.equal(alice.message(ack.message_id!)!.body, "ok \ud83d\ude00 \ufffd", "a valid pair is kept, a lone half replaced");
  t.same((await alice.history({ limit: 10 })).messages.map((m) => m.body), [live, "ok \ud83d\ude00 \ufffd"]);
});

t.test("a 4001 close makes the client fetch a fresh token and resume with since", async (t) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  await new Promise((r) => server.once("listening", r));
  const urls: URL[] = [];
  server.on("connection", (ws, req) => {
    const url = new URL(req.url!, "http://x");
    urls.push(url);
    if (urls.length === 1) {
      for (const s of [1, 2]) ws.send(createEvent(s));
      setTimeout(() => ws.close(4001, "token expired"), 50);
    } else {
      for (const s of [3, 4]) ws.send(createEvent(s));
      ws.send(JSON.stringify({ operation: "resumed", group: "g", seq: 4 }));
    }
  });
  const port = (server.address() as { port: number }).port;
  const asked: boolean[] = [];
  const c = client(t, { url: `ws://127.0.0.1:${port}`, group: "g", historyLimit: 0, token: ({ expired }) => (asked.push(expired), `token-${asked.length}`) });
  const states: StateChange[] = [];
  c.on("state", (s) => states.push(s));
  const rec = recorder(c);
  await c.connect();
  await until("the resumed events", () => c.lastSeq === 4);
  t.same(asked, [false, true], "the token function was asked for a fresh token after the 4001");
  t.same(urls.map((u) => [u.searchParams.get("token"), u.searchParams.get("since")]), [["token-1", null], ["token-2", "2"]], "and the client resumed from its last seq with it");
  t.same(rec.seqs(), [1, 2, 3, 4], "nothing lost, nothing repeated");
  t.match(states.find((s) => s.state === "reconnecting"), { code: 4001, reason: "token expired" }, "the state change tells why");
});

// A real node in JWT mode with short-lived tokens: the server closes the socket at exp (plus
// JWT_CLOCK_TOLERANCE_S, 0 here) with 4001; the client renews its token and resumes.
t.test("across token expiries no message is lost or repeated", async (t) => {
  const jwtNode = await startInProcess(t, { DATABASE_URL: await freshDatabase(t), JWT_SECRET: TEST_JWT_SECRET, JWT_CLOCK_TOLERANCE_S: "0" });
  await untilDatabaseWarm(jwtNode.port, { token: await signToken("warm-up", 60) }); // not in the middle of the 2 s tokens below
  const url = `http://127.0.0.1:${jwtNode.port}`;
  const group = uniqueGroup("expiry");
  const renewals: Record<string, number> = { alice: 0, bob: 0 };
  const tokenOf = (user: string) => async ({ expired }: { expired: boolean }) => {
    if (expired) renewals[user]!++;
    return signToken(user, 2);
  };
  const alice = client(t, { url, group, token: tokenOf("alice"), historyLimit: 0 });
  const bob = client(t, { url, group, token: tokenOf("bob"), historyLimit: 0 });
  const expiries: string[] = [];
  for (const [name, c] of [["alice", alice], ["bob", bob]] as const) {
    c.on("state", (s) => {
      if (s.state === "reconnecting" && s.code === 4001) expiries.push(name);
    });
  }
  await Promise.all([alice.connect(), bob.connect()]);
  const atBob = recorder(bob);
  const atAlice = recorder(alice);
  const sent: Promise<unknown>[] = [];
  const started = Date.now();
  let i = 0;
  while (Date.now() - started < 5_000) {
    sent.push(alice.send(`m${++i}`));
    await sleep(50);
  }
  const acks = (await Promise.all(sent)) as { seq: number }[];
  await until("every event at both", () => atBob.seqs().length === i && atAlice.seqs().length === i, 10_000);
  t.ok(renewals.alice! >= 1 && renewals.bob! >= 1, `both renewed their tokens (${JSON.stringify(renewals)}; closes: ${expiries.join(", ")})`);
  t.same(acks.map((a) => a.seq), Array.from({ length: i }, (_, k) => k + 1), "every send acknowledged once, in order");
  t.same(atBob.seqs(), acks.map((a) => a.seq), "bob got every event once, in order, across the expiries");
  t.same(atAlice.seqs(), atBob.seqs());
  t.equal(new Set(atBob.bodies()).size, i, "no message twice");
});
