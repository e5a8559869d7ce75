// A seq gap on a multiplexed connection (which a correct server never sends, so a fake /ws/
// server makes one): the view drops what does not follow, the connection unsubscribes that group
// alone and subscribes it again from the view's last seq after a backoff, on the same socket,
// while the other groups keep flowing; a gap that persists backs off further each time.
import t from "tap";
import { WebSocketServer, type WebSocket } from "ws";
import { connection, recorder, until, view } from "../helpers/sdk.ts";

const event = (group: string, seq: number) => JSON.stringify({ operation: "create", seq, group, message: view(`${group}${seq}`, seq) });

t.test("a gap in one group resubscribes that group from its seq, on the same socket, others untouched", async (t) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  await new Promise((r) => server.once("listening", r));
  const frames: string[] = [];
  let sockets = 0;
  let peer: WebSocket | undefined;
  server.on("connection", (ws) => {
    sockets++;
    peer = ws;
    ws.on("message", (data) => {
      const f = JSON.parse(String(data)) as { operation: string; group: string; since?: number; request_id?: string };
      if (f.operation === "history") return ws.send(JSON.stringify({ operation: "history", group: f.group, request_id: f.request_id, messages: [], has_more: false }));
      frames.push(`${f.operation}:${f.group}${f.since === undefined ? "" : `:${f.since}`}`);
      ws.send(JSON.stringify({ operation: "ack", group: f.group, request_id: f.request_id, ...(f.operation === "subscribe" ? { seq: 0 } : {}) }));
      if (f.operation !== "subscribe") return;
      if (f.group === "a" && f.since === undefined) for (const s of [1, 2, 4]) ws.send(event("a", s)); // 3 is missing
      if (f.group === "a" && f.since === 2) {
        for (const s of [2, 3, 4]) ws.send(event("a", s)); // the replay, overlapping 2
        ws.send(JSON.stringify({ operation: "resumed", group: "a", seq: 4 }));
        ws.send(event("a", 5));
      }
    });
  });
  const port = (server.address() as { port: number }).port;
  const conn = connection(t, { url: `ws://127.0.0.1:${port}`, user: "u", historyLimit: 0, reconnect: { baseMs: 200, maxMs: 2_000 } });
  const a = conn.follow("a");
  const b = conn.follow("b");
  const [atA, atB] = [recorder(a), recorder(b)];
  const states: string[] = [];
  a.on("state", (s) => states.push(s));
  conn.connect();
  await Promise.all([a.subscribed, b.subscribed]);
  await until("a resubscribed from its seq", () => frames.includes("subscribe:a:2"));
  peer!.send(event("b", 1)); // b flows on the same socket meanwhile
  await until("a resumed and live", () => a.lastSeq === 5 && atB.seqs().length === 1);
  t.same(atA.seqs(), [1, 2, 3, 4, 5], "a: each seq once, in order");
  t.same(atB.seqs(), [1], "b: untouched");
  t.same(frames, ["subscribe:a", "subscribe:b", "unsubscribe:a", "subscribe:a:2"], "only a was unsubscribed and subscribed again, from its last seq");
  t.equal(sockets, 1, "on the same socket");
  t.same(states, ["live", "subscribing", "syncing", "live"], "a went from live to subscribing, syncing and live again");
  t.equal(conn.state, "live");
});

t.test("a gap that persists backs off further each time", async (t) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  await new Promise((r) => server.once("listening", r));
  const subscribes: number[] = [];
  server.on("connection", (ws) => {
    ws.on("message", (data) => {
      const f = JSON.parse(String(data)) as { operation: string; group: string; since?: number; request_id?: string };
      ws.send(JSON.stringify({ operation: "ack", group: f.group, request_id: f.request_id, ...(f.operation === "subscribe" ? { seq: 0 } : {}) }));
      if (f.operation !== "subscribe") return;
      subscribes.push(Date.now());
      // Every subscribe is answered with a replay that ends and then a seq two ahead: a gap no replay fills.
      ws.send(JSON.stringify({ operation: "resumed", group: f.group, seq: f.since ?? 0 }));
      ws.send(event(f.group, (f.since ?? 0) + 2));
    });
  });
  const port = (server.address() as { port: number }).port;
  const conn = connection(t, { url: `ws://127.0.0.1:${port}`, user: "u", historyLimit: 0, reconnect: { baseMs: 50, maxMs: 400 } });
  conn.follow("a", { since: 0 });
  conn.connect();
  await until("five subscribes", () => subscribes.length >= 5, 20_000);
  const gaps = subscribes.slice(1).map((at, i) => at - subscribes[i]!);
  conn.close();
  // Backoff 50 ms doubling to 400, each delay half fixed, half random: at least 25, 50, 100, 200.
  t.ok(gaps.every((g, i) => g >= [25, 50, 100, 200][i]!), `each resubscribe waited longer (${gaps.join(", ")} ms)`);
});
