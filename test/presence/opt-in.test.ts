// Join and leave go only to the sockets that asked for them: `?presence=1` on /ws/chat/<group>/,
// `presence: true` in a /ws/ `subscribe`. A socket that did not ask still counts as present and
// can ask who is online (the `presence` frame), but a join costs it nothing.
import t from "tap";
import type { Test } from "tap";
import { connect, connectUrl, upgradeStatus, wsUrl } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";

const GRACE_MS = 300;
const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url, PRESENCE_GRACE_MS: String(GRACE_MS) });
await untilReady(node.port);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A socket that keeps every frame it gets, join and leave included, whatever its URL asked. */
const keepAll = (t: Test, target: string) => connectUrl(t, target, { presence: true });

t.test("/ws/chat/<group>/: only the socket with ?presence=1 gets join and leave", async (t) => {
  const g = uniqueGroup("optin");
  const asker = await connect(t, node.port, g, { user: "asker" }, { presence: true });
  await asker.next((f) => f.operation === "join" && f.user === "asker", 3_000);
  const quiet = await keepAll(t, wsUrl(node.port, g, { user: "quiet" }));
  const off = await keepAll(t, wsUrl(node.port, g, { user: "off", presence: "0" }));
  await asker.next((f) => f.operation === "join" && f.user === "quiet", 3_000);
  await asker.next((f) => f.operation === "join" && f.user === "off", 3_000);

  const bob = await connect(t, node.port, g, { user: "bob" });
  t.same(await asker.next((f) => f.operation === "join", 3_000), { operation: "join", group: g, user: "bob" }, "the asker gets bob's join");
  await bob.close();
  t.same(await asker.next((f) => f.operation === "leave", GRACE_MS + 3_000), { operation: "leave", group: g, user: "bob" }, "and his leave after the grace");
  await sleep(GRACE_MS); // a frame sent to the others would be here by now (the tick is at most a quarter of the grace)
  t.same(quiet.received, [], "no join or leave without ?presence");
  t.same(off.received, [], "none with ?presence=0");

  const answer = await quiet.request({ operation: "presence" });
  t.match(answer, { operation: "presence", group: g, count: 3 }, "a socket that did not ask counts, and can ask who is online");
  t.same(
    (answer.users as { user: string }[]).map((u) => u.user).sort(),
    ["asker", "off", "quiet"],
  );
});

t.test("/ws/: join and leave for the subscriptions with presence: true only", async (t) => {
  const [g1, g2] = [uniqueGroup("optin-a"), uniqueGroup("optin-b")];
  const mux = await keepAll(t, `ws://127.0.0.1:${node.port}/ws/?user=alice`);
  t.match(await mux.request({ operation: "subscribe", group: g1, presence: true }), { operation: "ack", group: g1 });
  t.match(await mux.request({ operation: "subscribe", group: g2 }), { operation: "ack", group: g2 });
  t.same(await mux.next((f) => f.operation === "join", 3_000), { operation: "join", group: g1, user: "alice" }, "her own join in the group she asked presence of");
  const carol1 = await connect(t, node.port, g1, { user: "carol" });
  const carol2 = await connect(t, node.port, g2, { user: "carol" });
  t.same(await mux.next((f) => f.operation === "join", 3_000), { operation: "join", group: g1, user: "carol" });
  await carol1.close();
  await carol2.close();
  t.same(await mux.next((f) => f.operation === "leave", GRACE_MS + 3_000), { operation: "leave", group: g1, user: "carol" });
  await sleep(GRACE_MS);
  t.same(mux.received.filter((f) => f.operation === "join" || f.operation === "leave"), [], `nothing of ${g2}, which did not ask`);
  t.match(await mux.request({ operation: "presence", group: g2 }), { operation: "presence", group: g2, count: 1 }, "it can still ask who is online there");

  t.match(await mux.request({ operation: "unsubscribe", group: g1 }), { operation: "ack" });
  const dave = await connect(t, node.port, g1, { user: "dave" });
  await sleep(GRACE_MS);
  t.same(mux.received.filter((f) => f.operation === "join" || f.operation === "leave"), [], "nothing after unsubscribing");
  await dave.close();
});

t.test("a bad ?presence= or subscribe presence is refused and changes nothing", async (t) => {
  const g = uniqueGroup("optin-bad");
  t.equal(await upgradeStatus(wsUrl(node.port, g, { user: "x", presence: "yes" })), 400, "?presence=yes: 400");
  t.equal(await upgradeStatus(wsUrl(node.port, g, { user: "x", presence: "1" })), 101, "?presence=1: 101");
  t.equal(await upgradeStatus(wsUrl(node.port, g, { user: "x", presence: "true" })), 101, "?presence=true: 101");
  const mux = await keepAll(t, `ws://127.0.0.1:${node.port}/ws/?user=x`);
  t.match(await mux.request({ operation: "subscribe", group: g, presence: "yes" }), { operation: "error", group: g, code: "bad_request", message: /presence/ });
  t.match(await mux.request({ operation: "create", group: g, type: "text", body: "x" }), { operation: "error", code: "bad_request" }, "not subscribed by it");
});
