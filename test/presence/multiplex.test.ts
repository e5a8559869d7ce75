// Presence on both endpoints: a `/ws/` subscription counts like a `/ws/chat/<group>/` socket, a
// user on both counts once, `unsubscribe` ends presence like a close (after the grace), and the
// `presence` frame on `/ws/` answers for the group it names.
import t from "tap";
import { connect, connectUrl } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase } from "../helpers/services.ts";

const GRACE_MS = 300;
const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url, PRESENCE_GRACE_MS: String(GRACE_MS) });
await untilReady(node.port); // warms the database pool: a cold one on a loaded machine answers the first upgrade 503
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A /ws/ socket that keeps join/leave frames (its subscriptions ask for them). */
const connectMux = (user: string) => connectUrl(t, `ws://127.0.0.1:${node.port}/ws/?user=${user}`, { presence: true });

t.test("a /ws/ subscription is presence; with a per-group socket of the same user it counts once", async (t) => {
  const [g1, g2] = [uniqueGroup("pmux-a"), uniqueGroup("pmux-b")];
  const watcher = await connect(t, node.port, g1, { user: "watcher" }, { presence: true });
  await watcher.next((f) => f.operation === "join" && f.user === "watcher");
  const mux = await connectMux("alice");
  await mux.request({ operation: "subscribe", group: g1, presence: true });
  await mux.request({ operation: "subscribe", group: g2, presence: true });
  t.same(await watcher.next((f) => f.operation === "join", 3_000), { operation: "join", group: g1, user: "alice" });
  t.same(await mux.next((f) => f.operation === "join" && f.group === g2, 3_000), { operation: "join", group: g2, user: "alice" }, "her join in the other group");
  const answer = await mux.request({ operation: "presence", group: g2 });
  t.match(answer, { operation: "presence", group: g2, count: 1, users: [{ user: "alice" }] }, "the presence frame answers for the group it names");

  const tab = await connect(t, node.port, g1, { user: "alice" }, { presence: true });
  await sleep(GRACE_MS); // past the presence tick (PRESENCE_BATCH_MS, capped at a quarter of the grace), so a wrong join would be here
  t.same(watcher.received, [], "her per-group tab adds nothing");
  t.match(await watcher.request({ operation: "presence" }), { count: 2 });

  t.match(await mux.request({ operation: "unsubscribe", group: g1 }), { operation: "ack" });
  await sleep(GRACE_MS + 300);
  t.same(watcher.received, [], "unsubscribing while the tab stays: nothing");
  await tab.close();
  t.same(await watcher.next((f) => f.operation === "leave", GRACE_MS + 3_000), { operation: "leave", group: g1, user: "alice" }, "the last one gone: one leave");

  const other = await connect(t, node.port, g2, { user: "other" }, { presence: true });
  await other.next((f) => f.operation === "join" && f.user === "other");
  await mux.request({ operation: "unsubscribe", group: g2 });
  t.same(await other.next((f) => f.operation === "leave", GRACE_MS + 3_000), { operation: "leave", group: g2, user: "alice" }, "unsubscribe ends presence like a close");
});
