// The multiplexed connection's outbox across a page reload: operations of several groups made
// before the reload (some stored by the server with their ack lost, some never sent) are taken
// over by the next connection of the same user when it follows those groups, resent with their
// original request_ids, and stored once. The saved outbox is the same for both endpoints: what
// a per-group ChatClient saved, a ChatConnection sends.
import t from "tap";
import { ChatConnection, type RestoredOperation } from "../../src/client/index.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup, untilDatabaseWarm } from "../helpers/probe.ts";
import { client, connection, FlakySocket, MemoryStorage, recorder, until } from "../helpers/sdk.ts";
import { freshDatabase } from "../helpers/services.ts";

const db = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: db });
await untilDatabaseWarm(node.port); // a cold pool on a loaded machine makes the first upgrade wait past its deadline (503)
const base = `http://127.0.0.1:${node.port}`;
t.teardown(() => void (FlakySocket.mode = "normal"));

t.test("operations of two groups made before a reload are sent by the next connection, once each", async (t) => {
  const [g1, g2] = [uniqueGroup("reload-a"), uniqueGroup("reload-b")];
  const storage = new MemoryStorage();
  const alice = connection(t, { url: base, user: "alice", WebSocket: FlakySocket, outboxStorage: storage, queueTimeoutMs: 60_000 });
  const bob = connection(t, { url: base, user: "bob" });
  const [a1, a2] = await Promise.all([alice.subscribe(g1), alice.subscribe(g2)]);
  const [b1, b2] = await Promise.all([bob.subscribe(g1), bob.subscribe(g2)]);
  const [at1, at2] = [recorder(b1), recorder(b2)];
  const first = await a1.send("before");
  t.equal(storage.map.size, 0, "nothing is saved once answered");

  FlakySocket.mode = "deaf"; // stored by the server, the acks never arrive
  void a1.edit(first.message_id!, "before, edited").catch(() => {});
  void a2.send("reached g2").catch(() => {});
  await until("bob sees both", () => at1.seqs().length === 2 && at2.seqs().length === 1);
  FlakySocket.mode = "cut"; // never leaves the page
  void a2.send("never left").catch(() => {});
  t.same([...storage.map.keys()].sort(), [`chatroom.outbox.${g1}.alice`, `chatroom.outbox.${g2}.alice`].sort(), "saved per group and user");
  const saved = storage.entries().map((e) => e.request_id);
  t.equal(saved.length, 3);

  const reloaded = storage.copy();
  FlakySocket.mode = "normal";
  const again = connection(t, { url: base, user: "alice", outboxStorage: reloaded });
  const views = [again.follow(g1, { since: 2 }), again.follow(g2, { since: 1 })];
  const restored: RestoredOperation[] = [];
  for (const v of views) v.on("restored", (ops) => restored.push(...ops));
  again.connect();
  await Promise.all(views.map((v) => v.subscribed));
  t.same(restored.map((r) => r.requestId).sort(), [...saved].sort(), "each resent with its original request_id");
  t.same(restored.map((r) => [r.operation, r.frame.body]), [["update", "before, edited"], ["create", "reached g2"], ["create", "never left"]], "in each group's order");
  const acks = await Promise.all(restored.map((r) => r.result));
  t.same(acks.map((a) => [a.group, a.seq]), [[g1, 2], [g2, 1], [g2, 2]], "the stored ones answer their original seqs");
  await until("bob sees the last", () => at2.seqs().length === 2);
  t.same(at1.texts(), ["before", "before, edited"], "g1: each operation once");
  t.same(at2.texts(), ["reached g2", "never left"], "g2: each operation once");
  t.same((await views[1]!.history()).messages.map((m) => m.body), ["reached g2", "never left"], "stored once");
  t.equal(reloaded.map.size, 0, "the saved outbox is empty once everything is answered");
});

t.test("what a per-group ChatClient saved, a multiplexed connection sends after the reload", async (t) => {
  const group = uniqueGroup("reload-cross");
  const storage = new MemoryStorage();
  const old = client(t, { url: base, group, user: "carol", WebSocket: FlakySocket, outboxStorage: storage });
  await old.connect();
  FlakySocket.mode = "cut";
  void old.send("from the old page").catch(() => {});
  t.equal(storage.entries().length, 1);
  FlakySocket.mode = "normal";
  const reloaded = storage.copy();
  const conn = new ChatConnection({ url: base, user: "carol", WebSocket: (await import("ws")).default, outboxStorage: reloaded });
  t.teardown(() => conn.close());
  const view = conn.follow(group);
  const restored: RestoredOperation[] = [];
  view.on("restored", (ops) => restored.push(...ops));
  conn.connect();
  await view.subscribed;
  t.equal(restored.length, 1, "taken over");
  t.match(await restored[0]!.result, { operation: "ack", group, seq: 1 }, "the frame went out on /ws/ (naming its group) and was stored");
  await until("the message in the view", () => view.messages.length === 1);
  t.equal(view.messages[0]!.body, "from the old page");
  t.equal(reloaded.map.size, 0);
});
