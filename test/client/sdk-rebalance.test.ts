// A rebalance close (4012) is a move, not a failure: the SDK reconnects after its first,
// jittered delay even after earlier failed attempts had grown the backoff, and resumes with
// `since` the last seq it delivered, so nothing is lost or repeated.
import t from "tap";
import { WebSocketServer } from "ws";
import { client, createEvent, recorder, until } from "../helpers/sdk.ts";

t.test("on 4012 the client reconnects after the first jittered delay and resumes with since", async (t) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  await new Promise((r) => server.once("listening", r));
  const urls: string[] = [];
  server.on("connection", (ws, req) => {
    urls.push(req.url!);
    const n = urls.length;
    if (n <= 2) return ws.close(1011, "failing"); // two failures: the backoff grows
    if (n === 3) {
      for (const s of [1, 2]) ws.send(createEvent(s));
      setTimeout(() => ws.close(4012, "rebalance: reconnect elsewhere"), 50);
      return;
    }
    ws.send(createEvent(3));
    ws.send(JSON.stringify({ operation: "resumed", group: "g", seq: 3 }));
    ws.send(createEvent(4));
  });
  const port = (server.address() as { port: number }).port;
  const baseMs = 200;
  const c = client(t, { url: `ws://127.0.0.1:${port}`, group: "g", user: "u", historyLimit: 0, reconnect: { baseMs, maxMs: 10_000 } });
  const delays: { code?: number; delayMs?: number }[] = [];
  c.on("state", (s) => {
    if (s.state === "reconnecting") delays.push({ code: s.code, delayMs: s.delayMs });
  });
  const rec = recorder(c);
  void c.connect().catch(() => {});
  await until("event 4", () => c.lastSeq === 4, 10_000);
  t.same(rec.seqs(), [1, 2, 3, 4], "each seq once, in order");
  t.equal(urls[3], "/ws/chat/g/?user=u&since=2", "resumed with since = the last seq delivered");
  const failures = delays.filter((d) => d.code === 1011);
  t.ok(failures.length === 2 && failures[1]!.delayMs! >= baseMs, `the failures grew the delay (${failures.map((d) => d.delayMs).join(", ")} ms)`);
  const move = delays.find((d) => d.code === 4012);
  t.ok(move && move.delayMs! >= baseMs / 2 && move.delayMs! <= baseMs, `after 4012 the first delay again, jittered between ${baseMs / 2} and ${baseMs} ms (${move?.delayMs} ms)`);
});
