// What a conversation needs besides messages, per group over one multiplexed socket: typing
// indicators (throttled out, expiring in, each on its own group), who is online, attachments,
// and paging back through older history, every group on the same `/ws/` connection.
import { setTimeout as sleep } from "node:timers/promises";
import t from "tap";
import { attachmentPath, type ChatConnection } from "../../src/client/index.ts";
import { startInProcess } from "../helpers/node.ts";
import { uniqueGroup, untilDatabaseWarm } from "../helpers/probe.ts";
import { connection, until } from "../helpers/sdk.ts";
import { freshDatabase } from "../helpers/services.ts";

const db = await freshDatabase(t);
const node = await startInProcess(t, { DATABASE_URL: db, PRESENCE_GRACE_MS: "200" });
await untilDatabaseWarm(node.port); // a cold pool on a loaded machine makes the first upgrade wait past its deadline (503)
const base = `http://127.0.0.1:${node.port}`;
let sockets = 0;
const counted = (c: ChatConnection) => (c.on("state", (s) => void (s.state === "connecting" && sockets++)), c);

t.test("typing, presence and files per group, on one socket each", async (t) => {
  const [g1, g2] = [uniqueGroup("live-a"), uniqueGroup("live-b")];
  const alice = counted(connection(t, { url: base, user: "alice", presence: true, typing: { throttleMs: 250, idleMs: 300 } }));
  const bob = counted(connection(t, { url: base, user: "bob", presence: true, typing: { expireMs: 2_000 } }));
  const [a1, a2] = await Promise.all([alice.subscribe(g1), alice.subscribe(g2)]);
  const [b1, b2] = await Promise.all([bob.subscribe(g1), bob.subscribe(g2)]);

  // Presence: each view knows who is online in its group.
  await until("both online in both groups", () => [a1, a2].every((v) => v.presence.count === 2) && [b1, b2].every((v) => v.presence.count === 2));
  t.same(a1.presence.users, ["alice", "bob"], "alice's view of g1 lists both");
  t.same(b2.presence.users, ["alice", "bob"], "bob's view of g2 got the list from the answer");

  // Typing in g1 shows in bob's g1 only.
  const inG1: string[] = [];
  const inG2: string[] = [];
  b1.on("typing", (e) => inG1.push(`${e.group}:${e.user}:${e.typing_status}`));
  b2.on("typing", (e) => inG2.push(`${e.user}:${e.typing_status}`));
  const started = Date.now();
  while (Date.now() - started < 700) {
    a1.typing();
    await sleep(40);
  }
  await until("not_typing after inactivity", () => inG1.at(-1) === `${g1}:alice:not_typing`, 3_000);
  const typing = inG1.filter((x) => x.endsWith(":typing")).length;
  t.ok(typing >= 2 && typing <= 4, `about one typing frame per 250 ms over 700 ms of keystrokes (${typing})`);
  t.same(inG2, [], "nothing typed reaches the other group");
  t.same(b1.typers, [], "the indicator expired with not_typing");
  a1.typing();
  await until("bob sees alice typing", () => b1.typers.includes("alice"));
  await a1.send("done typing");
  await until("a message ends the indicator", () => b1.typers.length === 0);
  t.same(a1.typers, [], "alice's own typing is not listed to her");

  // A picture in g2: an image message, its bytes at /files/<id>.
  const picture = Buffer.from("not really a png");
  const pic = await a2.send("a picture", { file: { name: "p.png", content_type: "image/png", data: picture.toString("base64") } });
  t.match(pic, { operation: "ack", group: g2, seq: 1 });
  await until("the picture at bob", () => b2.message(pic.message_id!) !== undefined);
  const m = b2.message(pic.message_id!)!;
  t.equal(m.type, "image", "an image/* file makes an image message");
  const res = await fetch(base + attachmentPath(m));
  t.same(Buffer.from(await res.arrayBuffer()), picture, "the attachment URL serves the bytes");
  t.equal(b1.message(pic.message_id!), undefined, "not in the other group's view");

  // Bob leaves g2 (unsubscribe): alice's g2 hears it, g1 does not.
  await bob.unsubscribe(g2);
  t.equal(b2.state, "closed");
  await until("bob's leave in g2, after the grace", () => a2.presence.count === 1, 5_000);
  t.equal(a1.presence.count, 2, "still present in g1");
  t.equal(sockets, 2, "one socket per connection, whatever the groups");
});

t.test("older pages load per group into its view", async (t) => {
  const [g1, g2] = [uniqueGroup("older-a"), uniqueGroup("older-b")];
  const writer = connection(t, { url: base, user: "w" });
  const [w1, w2] = await Promise.all([writer.subscribe(g1), writer.subscribe(g2)]);
  for (let i = 1; i <= 25; i++) await w1.send(`a${i}`);
  for (let i = 1; i <= 3; i++) await w2.send(`b${i}`);
  const reader = connection(t, { url: base, user: "r", historyLimit: 10 });
  const [r1, r2] = await Promise.all([reader.subscribe(g1), reader.subscribe(g2)]);
  await until("the first pages", () => r1.messages.length === 10 && r2.messages.length === 3);
  t.equal(r1.hasMore, true);
  t.equal(r2.hasMore, false);
  const page = await r1.loadOlder();
  t.same(page.messages.map((m) => m.body), Array.from({ length: 10 }, (_, i) => `a${i + 6}`), "the page before the oldest known");
  await r1.loadOlder();
  t.same(r1.messages.map((m) => m.body), Array.from({ length: 25 }, (_, i) => `a${i + 1}`), "oldest first, no repeats");
  t.equal(r1.hasMore, false);
  t.same(r2.messages.map((m) => m.body), ["b1", "b2", "b3"], "the other group's view is untouched");
  t.same((await r2.history({ limit: 2 })).messages.map((m) => m.body), ["b2", "b3"], "history() answers a page without changing messages");
  t.equal(r2.messages.length, 3);
});
