// The frame loop with a dispatcher that answers inside the call (typing on the in-process bus):
// the answer goes out and the frame's budgets come back before message() returns; a frame
// answered later holds them until then, as before; a socket draining closes once answered.
import t from "tap";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { ByteBudget } from "../../src/chat/budget.ts";
import { Dispatcher } from "../../src/chat/dispatch.ts";
import type { ChatService } from "../../src/chat/service.ts";
import { SlowConsumers } from "../../src/gateway/backpressure.ts";
import { Connection } from "../../src/gateway/connection.ts";
import { FrameLoop } from "../../src/gateway/frames.ts";
import { ConnectionLimits } from "../../src/gateway/limits.ts";
import { UploadBudget } from "../../src/gateway/upload-budget.ts";
import { createMetrics } from "../../src/metrics/metrics.ts";
import { storelessService } from "../helpers/memory-service.ts";

async function harness() {
  const metrics = createMetrics();
  const delivered: string[] = [];
  let service: ChatService;
  const bus = new MemoryBus((group, payload) => service.receive(group, payload));
  service = storelessService(bus, metrics, (_group, payload) => delivered.push(payload));
  await service.join("g");
  const dispatcher = new Dispatcher(service, metrics, { error() {} }, { touch() {} } as never);
  const limits = new ConnectionLimits({ framesPerSecond: 1e6, framesBurst: 1e6, userFramesPerSecond: 1e6, userUploadBytesPerSecond: 1e9, maxSocketsPerUser: 100, maxGroupsPerNode: 100, allowedOrigins: null }, metrics);
  const slow = new SlowConsumers<Connection>(1 << 20, () => {}, 100, () => Connection.directSends);
  const budget = new ByteBudget(1 << 20);
  const frames = new FrameLoop(dispatcher, limits, budget, new UploadBudget(1e9), slow, metrics, { maxPendingFrames: 10, maxPendingBytes: 1 << 20 }, () => {});
  const admitted = limits.admit(null, "127.0.0.1", "g", new Set());
  if (!admitted.ok) throw new Error("not admitted");
  const conn = new Connection("c1", "g", null, null, admitted.quota, 1_000);
  const sent: string[] = [];
  const ended: number[] = [];
  conn.attach({ send: (p: string) => void sent.push(p), cork: (fn: () => void) => fn(), getBufferedAmount: () => 0, subscribe() {}, unsubscribe() {}, getTopics: () => [], end: (code: number) => void ended.push(code) } as never, () => {});
  const frame = (o: object) => new TextEncoder().encode(JSON.stringify(o)).buffer as ArrayBuffer;
  return { frames, conn, sent, ended, delivered, budget, frame };
}

t.test("typing on the in-process bus: published, answered and settled inside message()", async (t) => {
  const h = await harness();
  h.frames.message(h.conn, h.frame({ operation: "typing", user: "bob", typing_status: "typing", request_id: "r1" }), false);
  t.equal(h.delivered.length, 1, "the event was delivered");
  t.same(h.sent, ['{"operation":"ack","group":"g","request_id":"r1"}'], "the ack went out at once");
  t.equal(h.conn.pending, 0, "nothing pending");
  t.equal(h.conn.pendingBytes, 0);
  t.equal(h.budget.used, 0, "the node budget given back");
  h.frames.message(h.conn, h.frame({ operation: "typing", user: "bob", typing_status: "not_typing" }), false);
  t.equal(h.delivered.length, 2);
  t.equal(h.sent.length, 1, "no request_id: nothing sent back");
  t.equal(h.conn.pending, 0);
});

t.test("a frame answered later holds its budgets until its answer, which still goes out", async (t) => {
  const h = await harness();
  // No user in open dev mode: the generic path's error, after a promise.
  h.frames.message(h.conn, h.frame({ operation: "typing", typing_status: "typing", request_id: "r2" }), false);
  t.equal(h.conn.pending, 1, "pending while the generic path runs");
  t.ok(h.budget.used > 0);
  h.frames.message(h.conn, h.frame({ operation: "typing", user: "bob", typing_status: "typing", request_id: "r3" }), false);
  t.equal(h.sent.length, 1, "the later typing frame answered at once (answers may come in any order)");
  t.match(h.sent[0], /"request_id":"r3"/);
  await new Promise((r) => setImmediate(r));
  t.equal(h.sent.length, 2);
  t.match(JSON.parse(h.sent[1]!), { operation: "error", code: "bad_request", request_id: "r2" });
  t.equal(h.conn.pending, 0);
  t.equal(h.budget.used, 0);
});

t.test("a socket whose turn to drain came closes once its typing frame is answered", async (t) => {
  const h = await harness();
  h.frames.message(h.conn, h.frame({ operation: "typing", typing_status: "typing", request_id: "r4" }), false);
  h.conn.drain(1001, "going away");
  t.same(h.ended, [], "a frame in flight: not yet");
  await new Promise((r) => setImmediate(r));
  t.same(h.ended, [1001], "closed once answered");
});

t.test("a frame's text is read as UTF-8 as it came: non-ASCII kept, a leading BOM still not JSON", async (t) => {
  const h = await harness();
  h.frames.message(h.conn, new TextEncoder().encode(JSON.stringify({ operation: "typing", user: "é😀", typing_status: "typing" })).buffer as ArrayBuffer, false);
  t.same(h.delivered, ['{"operation":"typing","group":"g","user":"é😀","typing_status":"typing"}']);
  const bom = new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(JSON.stringify({ operation: "typing", user: "bob", typing_status: "typing", request_id: "r5" }))]);
  h.frames.message(h.conn, bom.buffer, false);
  await new Promise((r) => setImmediate(r));
  t.equal(h.delivered.length, 1, "nothing published for it");
  t.same(JSON.parse(h.sent.at(-1)!), { operation: "error", group: "g", code: "bad_request", message: "frame is not valid JSON" });
});
