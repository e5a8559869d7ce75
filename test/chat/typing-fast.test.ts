// Typing's fast path against the schemas it stands in for: the hand check accepts exactly the
// typing frames the schemas accept (a bad one goes the generic way and gets the schemas' error),
// the template writes exactly what JSON.stringify writes, and a dispatcher answers, counts and
// publishes the same whichever way a frame went.
import t from "tap";
import * as v from "valibot";
import type { EventBus } from "../../src/bus/bus.ts";
import { MemoryBus } from "../../src/bus/memory-bus.ts";
import { Dispatcher } from "../../src/chat/dispatch.ts";
import { seqOf, serialize } from "../../src/chat/events.ts";
import type { ChatService } from "../../src/chat/service.ts";
import { isCleanTyping, typingEvent } from "../../src/chat/typing-fast.ts";
import { createMetrics } from "../../src/metrics/metrics.ts";
import { ClientFrames, Envelope } from "../../src/protocol/index.ts";
import { storelessService } from "../helpers/memory-service.ts";

const ABSENT = Symbol("absent");
const requestIds = [ABSENT, "r", "x".repeat(64), "x".repeat(65), "", 7, null, "a\u0000b", "é", {}];
const users = [ABSENT, "alice", "", "x".repeat(128), "x".repeat(129), "a\u0001b", "a\u007fb", "a\u202Eb", "a\u2066b", "\uD800", "a\uDC00", "😀", "t1_2_3", 'q"\\', 5, null, ["a"]];
const statuses = [ABSENT, "typing", "not_typing", "_", "", "Typing", "x".repeat(32), "x".repeat(33), "a-b", "typing\n", 1, null, true];

/** What the generic path accepts: the envelope's request_id, then the operation's schema. */
function schemasAccept(frame: Record<string, unknown>) {
  const rid = v.safeParse(Envelope.request_id, frame.request_id);
  const f = v.safeParse(ClientFrames.typing, frame);
  return rid.success && f.success ? { request_id: rid.output, ...f.output } : null;
}

t.test("the hand check accepts exactly the typing frames the schemas accept, with the same values", async (t) => {
  let accepted = 0;
  let checked = 0;
  for (const rid of requestIds) {
    for (const user of users) {
      for (const status of statuses) {
        const frame: Record<string, unknown> = { operation: "typing", group: "ignored", extra: 1 };
        if (rid !== ABSENT) frame.request_id = rid;
        if (user !== ABSENT) frame.user = user;
        if (status !== ABSENT) frame.typing_status = status;
        // Through JSON, as frames arrive (and so that only JSON values are tried).
        const parsed = JSON.parse(JSON.stringify(frame)) as Record<string, unknown>;
        const want = schemasAccept(parsed);
        checked++;
        if (isCleanTyping(parsed) !== (want !== null)) {
          t.fail(`disagree on ${JSON.stringify(parsed)}: schemas ${want !== null ? "accept" : "refuse"}`);
          continue;
        }
        if (want === null) continue;
        accepted++;
        t.same({ request_id: parsed.request_id, user: parsed.user, typing_status: parsed.typing_status }, want, "same values");
      }
    }
  }
  t.ok(accepted > 20 && accepted < checked / 2, `${accepted} of ${checked} frames accepted by both`);
});

t.test("only an object whose operation is typing is taken", async (t) => {
  for (const raw of [null, 5, "typing", [], ["typing"], { operation: "Typing", typing_status: "typing" }, { typing_status: "typing" }, { operation: "seen", typing_status: "typing" }]) {
    t.notOk(isCleanTyping(raw), JSON.stringify(raw));
  }
  t.ok(isCleanTyping({ operation: "typing", typing_status: "typing" }));
});

t.test("the template writes what JSON.stringify of the event writes", async (t) => {
  for (const group of ["g", "a.b-c_D9", "x".repeat(99)]) {
    for (const [i, user] of ["alice", 'q"\\', "é😀", "\u2028\u2029", "\uD800x", "t1_2_3", " "].entries()) {
      for (const status of ["typing", "not_typing", "_"]) {
        // (the user's index in the name: U+2028 in a test name breaks TAP's line)
        t.equal(typingEvent(group, user, status), serialize({ operation: "typing", group, user, typing_status: status }), `${group}, user ${i}, ${status}`);
      }
    }
  }
});

/**
 * A dispatcher over an in-process bus, recording what it publishes. `viaPromise`: the bus
 * without publishNow, as the Redis buses are (delivery after publish's promise).
 */
function harness(opts: { busUp?: boolean; viaPromise?: boolean; deliverThrows?: boolean } = {}) {
  const metrics = createMetrics();
  const published: string[] = [];
  let service: ChatService;
  const memory = new MemoryBus((group, payload) => service.receive(group, payload));
  if (opts.busUp === false) memory.isUp = () => false;
  const bus: EventBus = opts.viaPromise
    ? { publish: (g, p) => memory.publish(g, p), subscribe: (g) => memory.subscribe(g), unsubscribe: (g) => memory.unsubscribe(g), isUp: () => memory.isUp(), close: () => memory.close() }
    : memory;
  const silent = { error() {}, info() {}, warn() {} };
  service = storelessService(bus, metrics, (_group, payload) => {
    if (opts.deliverThrows) throw new Error("delivery failed");
    published.push(payload);
  });
  const dispatcher = new Dispatcher(service, metrics, silent, { touch() {} } as never);
  const count = async (name: string, operation: string) =>
    (await metrics.registry.getSingleMetric(name)!.get()).values.find((x) => x.labels.operation === operation)?.value;
  return { service, dispatcher, metrics, published, count };
}

for (const viaPromise of [false, true]) t.test(`a dispatcher answers and publishes typing as the service's typing() does (${viaPromise ? "bus without publishNow" : "in-process bus"})`, async (t) => {
  const h = harness({ viaPromise });
  await h.service.join("g");
  const open = { group: "g", user: null };
  const alice = { group: "g", user: "alice" };
  const cases: [string, { group: string; user: string | null }, unknown, string | null, string | null][] = [
    ["no request_id: no answer", open, { operation: "typing", user: "bob", typing_status: "typing" }, null, "bob"],
    ["request_id: an ack", open, { operation: "typing", user: "bob", typing_status: "not_typing", request_id: "r1" }, '{"operation":"ack","group":"g","request_id":"r1"}', "bob"],
    ["the connection's user", alice, { operation: "typing", typing_status: "typing" }, null, "alice"],
    ["the connection's user named again", alice, { operation: "typing", user: "alice", typing_status: "typing", request_id: "r2" }, '{"operation":"ack","group":"g","request_id":"r2"}', "alice"],
    ["another user than the connection's", alice, { operation: "typing", user: "mallory", typing_status: "typing", request_id: "r3" }, '{"operation":"error","group":"g","code":"forbidden","message":"user does not match the connection\'s user","request_id":"r3"}', null],
    ["no user in open dev mode", open, { operation: "typing", typing_status: "typing", request_id: "r4" }, '{"operation":"error","group":"g","code":"bad_request","message":"user is required","request_id":"r4"}', null],
    ["a bad typing_status", open, { operation: "typing", user: "bob", typing_status: "Typing!", request_id: "r5" }, null, null],
  ];
  for (const [name, session, frame, answer, user] of cases) {
    h.published.length = 0;
    const got = await h.dispatcher.dispatch(session, JSON.stringify(frame));
    if (name === "a bad typing_status") t.match(JSON.parse(got!), { operation: "error", group: "g", code: "bad_request", request_id: "r5" }, name);
    else t.equal(got, answer, name);
    const f = frame as { typing_status: string };
    t.same(h.published, user === null ? [] : [serialize({ operation: "typing", group: "g", user, typing_status: f.typing_status })], `${name}: published`);
  }
  t.equal(await h.count("chat_frames_received_total", "typing"), cases.length, "every frame counted once, whichever path it took");
  t.equal(await h.count("chat_events_published_total", "typing"), 4, "every event published counted once");
  t.equal((await h.metrics.busPublishDuration.histogram.get()).values.find((x) => x.metricName === "chat_bus_publish_duration_seconds_count")?.value, 4, "each publish timed");
});

t.test("on the in-process bus a clean typing frame is published and answered inside the call; any other frame or bus gets a promise", async (t) => {
  const h = harness();
  await h.service.join("g");
  const open = { group: "g", user: null };
  const answer = h.dispatcher.dispatch(open, JSON.stringify({ operation: "typing", user: "bob", typing_status: "typing", request_id: "r1" }));
  t.equal(answer, '{"operation":"ack","group":"g","request_id":"r1"}', "the ack, not a promise of it");
  t.equal(h.published.length, 1, "published before dispatch returned");
  t.equal(h.dispatcher.dispatch(open, JSON.stringify({ operation: "typing", user: "bob", typing_status: "typing" })), null, "no request_id: no answer, at once");
  t.equal(h.published.length, 2);
  t.ok(h.dispatcher.dispatch(open, JSON.stringify({ operation: "typing", typing_status: "typing", request_id: "r2" })) instanceof Promise, "a frame the fast path leaves (no user) goes the generic way");
  const other = harness({ viaPromise: true });
  await other.service.join("g");
  const later = other.dispatcher.dispatch(open, JSON.stringify({ operation: "typing", user: "bob", typing_status: "typing", request_id: "r3" }));
  t.ok(later instanceof Promise, "a bus without publishNow: a promise");
  t.equal(await later, '{"operation":"ack","group":"g","request_id":"r3"}');
});

for (const viaPromise of [false, true]) t.test(`a delivery that throws is answered internal, counted and timed (${viaPromise ? "bus without publishNow" : "in-process bus"})`, async (t) => {
  const h = harness({ viaPromise, deliverThrows: true });
  await h.service.join("g");
  const got = await h.dispatcher.dispatch({ group: "g", user: null }, JSON.stringify({ operation: "typing", user: "bob", typing_status: "typing", request_id: "r" }));
  t.same(JSON.parse(got!), { operation: "error", group: "g", code: "internal", message: "internal error", request_id: "r" });
  t.equal(await h.count("chat_frames_received_total", "typing"), 1);
  t.equal(await h.count("chat_events_published_total", "typing"), 1);
  t.equal((await h.metrics.busPublishDuration.histogram.get()).values.find((x) => x.metricName === "chat_bus_publish_duration_seconds_count")?.value, 1, "the failed publish timed");
  const errors = (await h.metrics.registry.getSingleMetric("chat_errors_total")!.get()).values.find((x) => x.labels.code === "internal")?.value;
  t.equal(errors, 1, "the error counted");
  // The service's own typing() (the generic path) answers the same.
  await t.rejects(h.service.typing({ group: "g", user: null }, { user: "bob", typing_status: "typing" }), { message: "delivery failed" });
});

t.test("with the bus down, typing is refused unavailable and nothing is published", async (t) => {
  const h = harness({ busUp: false });
  await h.service.join("g");
  const got = await h.dispatcher.dispatch({ group: "g", user: null }, JSON.stringify({ operation: "typing", user: "bob", typing_status: "typing", request_id: "r" }));
  t.match(JSON.parse(got!), { operation: "error", group: "g", code: "unavailable", request_id: "r" });
  t.same(h.published, []);
  t.equal(await h.count("chat_frames_received_total", "typing"), 1);
});

t.test("seqOf passes typing over without its regex and still reads every stored event's seq", async (t) => {
  const reference = (p: string) => {
    const m = /^\{"operation":"[a-z]+","seq":(\d+)[,}]/.exec(p.slice(0, 48));
    return m ? Number(m[1]) : null;
  };
  const payloads = [
    typingEvent("g", "bob", "typing"),
    serialize({ operation: "seen", group: "g", message_id: "m", user: "u", seen_at: "2026-01-01T00:00:00.000Z" }),
    serialize({ operation: "delete", seq: 12, group: "g", message_id: "m", user: "u", message_seq: 3, author: "u" }),
    '{"operation":"create","seq":7,"group":"g"}',
    '{"operation":"create","seq":7}',
    '{"operation":"Create","seq":7}',
    '{"operation":"create", "seq":7}',
    '{"operation":"create","seq":x}',
    '{"operation":"',
    "",
    "[1,2]",
    '{"seq":3}',
  ];
  for (const p of payloads) {
    t.equal(seqOf(p), reference(p), p);
    t.equal(seqOf(Buffer.from(p)), reference(p), `${p} as bytes`);
  }
});
