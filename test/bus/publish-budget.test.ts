// The bus's publish budget, alone: while the connection is down publishes wait in order up to
// the byte budget (the default 16 MiB as well as a small one), the oldest dropped to make room
// for the newest; they go out in publish order once it is ready; what was sent and not yet
// acknowledged counts too (a Redis that stops reading cannot grow the queue), and then the
// newest publish of each group is kept aside and sent once there is room; a publish the
// connection refused because it went down waits for the next ready in its place.
import t from "tap";
import { PublishBudget, PublishBudgetExceeded } from "../../src/bus/publish-budget.ts";
import { DEFAULT_BUS_QUEUE_BYTES } from "../../src/bus/redis-bus.ts";
import { loadConfig } from "../../src/config/env.ts";

/** A connection whose readiness and answers the test controls. */
function fakeConnection() {
  const conn = {
    up: false,
    sent: [] as string[],
    /** Unanswered sends (resolve acknowledges, reject fails). */
    inFlight: [] as { payload: string; resolve: () => void; reject: (e: Error) => void }[],
    autoAck: true,
    send: (_group: string, payload: string) => {
      if (!conn.up) return Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false"));
      conn.sent.push(payload);
      if (conn.autoAck) return Promise.resolve();
      return new Promise<void>((resolve, reject) => conn.inFlight.push({ payload, resolve, reject }));
    },
  };
  return conn;
}

const settle = () => new Promise((r) => setImmediate(r));

t.test("the default budget is 16 MiB and is what MAX_BUS_QUEUE_BYTES defaults to", async (t) => {
  t.equal(DEFAULT_BUS_QUEUE_BYTES, 16 * 1024 * 1024);
  t.equal(loadConfig({}).MAX_BUS_QUEUE_BYTES, DEFAULT_BUS_QUEUE_BYTES);
  t.throws(() => loadConfig({ MAX_BUS_QUEUE_BYTES: "10" }), /MAX_BUS_QUEUE_BYTES/);
});

t.test("while disconnected, publishes wait up to the default budget, the oldest dropped for the newest; once ready they go out in order", async (t) => {
  const conn = fakeConnection();
  let dropped = 0;
  const budget = new PublishBudget({ maxBytes: DEFAULT_BUS_QUEUE_BYTES, ready: () => conn.up, send: conn.send, onDrop: () => dropped++ });
  const payload = (i: number) => `${String(i).padStart(8, "0")}:${"x".repeat(64 * 1024 - 9)}`; // 64 KiB each
  const results: Promise<"ok" | "refused">[] = [];
  for (let i = 0; i < 300; i++) {
    results.push(
      budget.publish("g", payload(i)).then(
        () => "ok" as const,
        (e) => (e instanceof PublishBudgetExceeded ? ("refused" as const) : Promise.reject(e)),
      ),
    );
  }
  t.equal(budget.bytes, 256 * 64 * 1024, "exactly 16 MiB waits");
  t.equal(dropped, 300 - 256, "the oldest were dropped to make room");
  t.equal(conn.sent.length, 0, "nothing was sent while down");
  conn.up = true;
  budget.flush();
  const outcome = await Promise.all(results);
  t.same(outcome.filter((o) => o === "ok").length, 256);
  t.same(outcome.slice(44), Array(256).fill("ok"), "the newest 256 were kept");
  t.same(conn.sent.map((p) => Number(p.slice(0, 8))), Array.from({ length: 256 }, (_, i) => 44 + i), "sent in publish order");
  t.equal(budget.bytes, 0);
  await t.resolves(budget.publish("g", "after"), "publishing works again");
});

t.test("sent but unacknowledged publishes count: a server that stops reading cannot grow the queue", async (t) => {
  const conn = fakeConnection();
  conn.up = true;
  conn.autoAck = false;
  const budget = new PublishBudget({ maxBytes: 1000, ready: () => conn.up, send: conn.send });
  const first = budget.publish("g", "a".repeat(600));
  await t.rejects(budget.publish("g", "b".repeat(600)), /publish queue full/, "600 in flight + 600 > 1000");
  const small = budget.publish("g", "c".repeat(400));
  t.equal(budget.bytes, 1000);
  conn.inFlight.splice(0).forEach((f) => f.resolve());
  await Promise.all([first, small]);
  t.equal(budget.bytes, 0, "acknowledged bytes are released");
  t.same(conn.sent.map((p) => p[0]), ["a", "c"], "the dropped one is not sent later: a newer one of its group went out");
});

t.test("with the budget full of unacknowledged publishes, each group's newest dropped publish goes out once there is room", async (t) => {
  const conn = fakeConnection();
  conn.up = true;
  conn.autoAck = false;
  const budget = new PublishBudget({ maxBytes: 1000, ready: () => conn.up, send: conn.send });
  const inFlight = budget.publish("a", "a1".padEnd(1000, "."));
  for (const p of ["a2", "b1", "a3", "b2"]) await t.rejects(budget.publish(p[0]!, p.padEnd(100, ".")), /publish queue full/, `${p} dropped`);
  t.equal(budget.bytes, 1000 + 200, "the newest of a and of b are kept aside (within a quarter more)");
  conn.inFlight.splice(0).forEach((f) => f.resolve());
  await inFlight;
  await settle();
  t.same(conn.sent.map((p) => p.slice(0, 2)), ["a1", "a3", "b2"], "then a's and b's newest are sent, so receivers see the gap and repair it");
  conn.inFlight.splice(0).forEach((f) => f.resolve());
  await settle();
  t.equal(budget.bytes, 0);
});

t.test("a publish refused because the connection just went down waits for the next ready, in its place", async (t) => {
  const conn = fakeConnection();
  conn.up = true;
  conn.autoAck = false;
  const budget = new PublishBudget({ maxBytes: 1 << 20, ready: () => conn.up, send: conn.send });
  const p1 = budget.publish("g", "1");
  const p2 = budget.publish("g", "2");
  // The connection drops: the second was refused by the client (never written), the first is
  // still in flight (the client resends it itself after reconnecting).
  conn.up = false;
  conn.inFlight[1]!.reject(new Error("Stream isn't writeable"));
  await settle();
  const p3 = budget.publish("g", "3");
  t.equal(budget.bytes, 3);
  conn.up = true;
  budget.flush();
  conn.inFlight[0]!.resolve();
  for (const f of conn.inFlight.slice(2)) f.resolve();
  await Promise.all([p1, p2, p3]);
  t.same(conn.sent, ["1", "2", "2", "3"], "2 was sent again before 3");
  t.equal(budget.bytes, 0);
});

t.test("an error from a ready connection fails that publish only; close refuses what waits", async (t) => {
  const conn = fakeConnection();
  conn.up = true;
  conn.autoAck = false;
  const budget = new PublishBudget({ maxBytes: 1 << 20, ready: () => conn.up, send: conn.send });
  const failed = budget.publish("g", "x");
  conn.inFlight[0]!.reject(new Error("ERR something"));
  await t.rejects(failed, /ERR something/);
  conn.up = false;
  const waiting = budget.publish("g", "y");
  budget.close();
  await t.rejects(waiting, /bus closed/);
  t.equal(budget.bytes, 0);
});
