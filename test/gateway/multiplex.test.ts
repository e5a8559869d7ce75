// One connection for many groups: `/ws/`. Every frame names its group; `subscribe` (with
// `since`) and `unsubscribe` choose what the socket follows; every per-group guarantee holds per
// subscription (replay, `resumed`, live with no gap or repeat, retries, the token's `groups`
// claim), and MAX_SUBSCRIPTIONS_PER_SOCKET bounds how many, at its default too.
import { SignJWT } from "jose";
import t from "tap";
import { connect, connectMux, upgradeStatus, type Frame } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });

const stored = (f: Frame) => f.operation === "create" || f.operation === "update" || f.operation === "reply" || f.operation === "delete";
const seqOf = (f: Frame) => (f as { seq: number }).seq;

t.test("subscribe, frames naming their group, unsubscribe: exact shapes and each refusal", async (t) => {
  const [g1, g2] = [uniqueGroup("mux-a"), uniqueGroup("mux-b")];
  const m = await connectMux(t, node.port, { user: "alice" });
  const s1 = await m.request({ operation: "subscribe", group: g1 });
  t.same(s1, { operation: "ack", group: g1, request_id: s1.request_id, seq: 0 }, "subscribe answers the group's last seq");
  await m.request({ operation: "subscribe", group: g2 });

  const c = await m.request({ operation: "create", group: g2, type: "text", body: "to b" });
  t.same(c, { operation: "ack", group: g2, request_id: c.request_id, message_id: c.message_id, seq: 1 });
  t.match(await m.next(stored), { operation: "create", seq: 1, group: g2, message: { body: "to b" } }, "the event names its group");
  const per = await connect(t, node.port, g1, { user: "bob" });
  await per.request({ operation: "create", type: "text", body: "to a" });
  t.match(await m.next(stored), { operation: "create", seq: 1, group: g1, message: { user: "bob" } }, "events of every followed group arrive");

  const none = await m.request({ operation: "create", type: "text", body: "x" });
  t.same(none, { operation: "error", code: "bad_request", message: "group: every frame on /ws/ names its group", request_id: none.request_id }, "no group: bad_request without one");
  t.match(await m.request({ operation: "create", group: "bad name", type: "text", body: "x" }), { operation: "error", code: "bad_request" });
  const other = uniqueGroup("mux-other");
  t.same(await m.request({ operation: "typing", group: other, typing_status: "typing" }).then(({ request_id: _, ...f }) => f), {
    operation: "error", group: other, code: "bad_request", message: `not subscribed to group ${other}: subscribe first`,
  }, "a group the socket does not follow");
  const history = await m.request({ operation: "history", group: g1 });
  t.match(history, { operation: "history", group: g1, has_more: false });

  const un = await m.request({ operation: "unsubscribe", group: g1 });
  t.same(un, { operation: "ack", group: g1, request_id: un.request_id });
  await per.request({ operation: "create", type: "text", body: "unheard" });
  t.match(await m.request({ operation: "unsubscribe", group: g1 }), { operation: "error", group: g1, code: "bad_request" }, "unsubscribing twice");
  t.match(await m.request({ operation: "create", group: g1, type: "text", body: "x" }), { operation: "error", code: "bad_request" }, "no frames for an unsubscribed group");
  await new Promise((r) => setTimeout(r, 200));
  t.same(m.received.filter((f) => f.operation !== "join" && f.operation !== "leave"), [], "nothing of the unsubscribed group arrives");

  const again = await m.request({ operation: "subscribe", group: g2 });
  t.same(again, { operation: "ack", group: g2, request_id: again.request_id, seq: 1 }, "subscribing again is idempotent");
  t.match(await per.request({ operation: "subscribe", group: g1 }), { operation: "error", group: g1, code: "bad_request", message: /only for \/ws\// }, "a per-group socket does not subscribe");
  t.match(await m.request({ operation: "subscribe", group: g2, since: -1 }), { operation: "error", group: g2, code: "bad_request" });
});

t.test("subscribe with since: replay, resumed, then live, per group, with no gap or repeat while others send", async (t) => {
  const groups = [uniqueGroup("mux-r1"), uniqueGroup("mux-r2"), uniqueGroup("mux-r3")];
  const senders = await Promise.all(groups.map((g, i) => connect(t, node.port, g, { user: `s${i}` })));
  for (const s of senders) for (let k = 0; k < 10; k++) await s.request({ operation: "create", type: "text", body: `early ${k}` });
  const m = await connectMux(t, node.port, { user: "reader" });
  const burst = Promise.all(senders.map(async (s) => {
    for (let k = 0; k < 15; k++) await s.request({ operation: "create", type: "text", body: `late ${k}` });
  }));
  const sinces = [0, 4, 10];
  const acks = await Promise.all(groups.map((g, i) => m.request({ operation: "subscribe", group: g, since: sinces[i] })));
  for (const [i, a] of acks.entries()) t.equal(a.group, groups[i], "ack names the group");
  await burst;
  for (const [i, g] of groups.entries()) {
    const got: number[] = [];
    let resumed: Frame | null = null;
    while (got.length < 25 - sinces[i]!) {
      const f = await m.next((x) => (stored(x) || x.operation === "resumed") && (x as { group?: string }).group === g, 10_000);
      if (f.operation === "resumed") resumed = f;
      else got.push(seqOf(f));
    }
    t.same(got, Array.from({ length: 25 - sinces[i]! }, (_, k) => sinces[i]! + 1 + k), `${g}: every seq after since once, in order`);
    t.ok(resumed !== null && (resumed as { group: string }).group === g, `${g}: resumed names its group`);
  }
  await new Promise((r) => setTimeout(r, 200));
  t.same(m.received.filter(stored), [], "no repeats");
  const ahead = await m.request({ operation: "subscribe", group: uniqueGroup("mux-empty"), since: 3 });
  t.match(ahead, { operation: "ack", seq: 0 });
  t.match(await m.next((f) => f.operation === "error"), { operation: "error", code: "bad_request", message: /beyond/ }, "since beyond the last seq");
});

t.test("a create retried with its request_id on /ws/ stores once", async (t) => {
  const g = uniqueGroup("mux-retry");
  const m = await connectMux(t, node.port, { user: "ret" });
  await m.request({ operation: "subscribe", group: g });
  const frame = { operation: "create", group: g, type: "text", body: "once", request_id: "same-1" };
  m.send(frame);
  const first = await m.next((f) => f.operation === "ack");
  m.send(frame);
  const second = await m.next((f) => f.operation === "ack");
  t.same(second, first, "the same ack");
  const page = await m.request({ operation: "history", group: g });
  t.equal((page as { messages: unknown[] }).messages.length, 1);
});

t.test("groups and leave on /ws/", async (t) => {
  const g = uniqueGroup("mux-leave");
  const m = await connectMux(t, node.port, { user: "lee" });
  await m.request({ operation: "subscribe", group: g });
  await m.request({ operation: "create", group: g, type: "text", body: "hi" });
  const list = await m.request({ operation: "groups" });
  t.match(list, { operation: "groups", groups: [{ group: g, last_seq: 1 }] }, "groups needs no group");
  t.notOk("group" in list);
  const left = await m.request({ operation: "leave", group: g });
  t.same(left, { operation: "ack", group: g, request_id: left.request_id });
  t.match(await m.request({ operation: "typing", group: g, typing_status: "typing" }), { code: "bad_request" }, "leave also unsubscribed");
  t.same((await m.request({ operation: "groups" })).groups, [], "and ended the membership");
});

t.test("the upgrade: open dev mode needs ?user=; JWT: the groups claim limits subscribe", async (t) => {
  t.equal(await upgradeStatus(`ws://127.0.0.1:${node.port}/ws/`), 400, "no user in open dev mode");
  t.equal(await upgradeStatus(`ws://127.0.0.1:${node.port}/ws`), 400, "without the slash too");
  const secret = "k".repeat(32);
  const jwtNode = await startInProcess(t, { DATABASE_URL: url, JWT_SECRET: secret });
  const allowed = uniqueGroup("mux-ok");
  const token = await new SignJWT({ sub: "tia", groups: [allowed] }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(secret));
  t.equal(await upgradeStatus(`ws://127.0.0.1:${jwtNode.port}/ws/`), 401, "no token");
  const m = await connectMux(t, jwtNode.port, { token });
  t.match(await m.request({ operation: "subscribe", group: allowed }), { operation: "ack", group: allowed });
  const denied = uniqueGroup("mux-no");
  t.match(await m.request({ operation: "subscribe", group: denied }), { operation: "error", group: denied, code: "forbidden" }, "a group outside the claim");
  t.match(await m.request({ operation: "create", group: allowed, type: "text", body: "hi", user: "someone" }), { code: "forbidden" }, "frames act as the token's user");
});

t.test("MAX_SUBSCRIPTIONS_PER_SOCKET at its default, 500: the 501st subscribe is too_large", async (t) => {
  const m = await connectMux(t, node.port, { user: "many" });
  const prefix = uniqueGroup("cap");
  const acks: Frame[] = [];
  // In batches that stay under MAX_PENDING_FRAMES (256 frames awaiting an answer).
  for (let b = 0; b < 5; b++) acks.push(...(await Promise.all(Array.from({ length: 100 }, (_, i) => m.request({ operation: "subscribe", group: `${prefix}-${b * 100 + i}` }, 30_000)))));
  t.ok(acks.every((a) => a.operation === "ack"), "500 subscriptions");
  const over = await m.request({ operation: "subscribe", group: `${prefix}-500` });
  t.same(over, { operation: "error", group: `${prefix}-500`, code: "too_large", message: "more than 500 subscriptions on one socket", request_id: over.request_id });
  await m.request({ operation: "unsubscribe", group: `${prefix}-0` });
  t.match(await m.request({ operation: "subscribe", group: `${prefix}-500` }), { operation: "ack" }, "after an unsubscribe there is room again");
});
