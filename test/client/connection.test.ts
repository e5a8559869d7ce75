// The multiplexed SDK connection against a real node: one socket follows several groups, each
// group's events reach its own view once and in order, a drop is survived with every group
// resuming from its own seq (no gap, no repeat), and the one outbox resends an operation made
// while offline with its request_id, stored once.
import t from "tap";
import WebSocket from "ws";
import { ChatConnection } from "../../src/client/index.ts";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup, untilDatabaseWarm } from "../helpers/probe.ts";
import { until } from "../helpers/sdk.ts";
import { freshDatabase } from "../helpers/services.ts";
import { TcpProxy } from "../helpers/tcp-proxy.ts";

const url = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: url });
await untilDatabaseWarm(node.port); // a cold pool on a loaded machine makes the first upgrade wait past its deadline (503)

t.test("one connection, three groups: events per view, a drop resumes each group from its own seq, the outbox sends once", async (t) => {
  const proxy = await TcpProxy.start(t, node.port);
  const conn = new ChatConnection({ url: `http://127.0.0.1:${proxy.port}`, user: "ann", WebSocket: WebSocket as never, reconnect: { baseMs: 50, maxMs: 300 } });
  t.teardown(() => conn.close());
  const groups = [uniqueGroup("cc-a"), uniqueGroup("cc-b"), uniqueGroup("cc-c")];
  const writers = await Promise.all(groups.map((g, i) => connect(t, node.port, g, { user: `w${i}` })));
  await writers[1]!.request({ operation: "create", type: "text", body: "before ann" });
  const views = await Promise.all(groups.map((g) => conn.subscribe(g)));
  t.same(views.map((v) => v.state), ["live", "live", "live"]);
  t.same(views.map((v) => v.lastSeq), [0, 1, 0], "each view starts at its group's last seq");
  await until("the history page of b", () => views[1]!.messages.length === 1);

  for (const [i, w] of writers.entries()) for (let k = 0; k <= i; k++) await w.request({ operation: "create", type: "text", body: `${groups[i]} ${k}` });
  await until("every live event", () => views[0]!.lastSeq === 1 && views[1]!.lastSeq === 3 && views[2]!.lastSeq === 3);
  t.same(views.map((v) => v.messages.map((m) => m.body)), [[`${groups[0]} 0`], ["before ann", `${groups[1]} 0`, `${groups[1]} 1`], [`${groups[2]} 0`, `${groups[2]} 1`, `${groups[2]} 2`]]);
  t.equal(views[2]!.unread, 3, "three unread by others");
  const ack = await views[2]!.read();
  t.equal(ack.read_seq, 3);
  t.equal(views[2]!.unread, 0);

  // The network drops; others write meanwhile, and ann writes too (into the outbox).
  await proxy.cut("reset");
  await until("offline", () => conn.state !== "live");
  for (const [i, w] of writers.entries()) await w.request({ operation: "create", type: "text", body: `offline ${i}` });
  const queued = views[0]!.send("sent while offline");
  await proxy.restore();
  const sent = await queued;
  t.match(sent, { operation: "ack", group: groups[0], seq: 3 }, "the outbox sent it after the reconnect");
  await until("each group resumed", () => views[0]!.lastSeq === 3 && views[1]!.lastSeq === 4 && views[2]!.lastSeq === 4 && views.every((v) => v.state === "live"));
  t.same(views[0]!.messages.map((m) => m.body), [`${groups[0]} 0`, "offline 0", "sent while offline"], "a: contiguous, its own message once");
  t.same(views[2]!.messages.map((m) => m.seq), [1, 2, 3, 4], "c: every seq once, in order");
  const page = await writers[0]!.request({ operation: "history" });
  t.equal((page as { messages: unknown[] }).messages.filter((m) => (m as { body: string }).body === "sent while offline").length, 1, "stored once");
  t.equal(views[2]!.unread, 1, "one new unread in c");

  const list = await conn.conversations();
  t.same(list.groups.map((g) => g.group).sort(), [...groups].sort(), "the conversation list over the same socket");
  t.match(list.groups.find((g) => g.group === groups[2]), { read_seq: 3, unread: 1 });
});
