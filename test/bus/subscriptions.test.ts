// A node subscribes to a group's Redis channel (chat:<group>) only while it has sockets in that
// group: from the first socket's open to the last socket's close, and once however many sockets.
import t from "tap";
import { connect } from "../helpers/client.ts";
import { spawnNode, type NodeProcess } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { freshDatabase, REDIS_URL, redisClient, requireRedis } from "../helpers/services.ts";

// Set-up runs in t.before: if it fails, tap still runs the teardowns (database dropped, nodes
// killed), which it skips when a top-level await throws.
let url = "";
let node!: NodeProcess;
let redis!: ReturnType<typeof redisClient>;
t.before(async () => {
  await requireRedis();
  url = await freshDatabase(t);
  node = await spawnNode(t, { DATABASE_URL: url, REDIS_URL });
  await untilReady(node.port);
  redis = redisClient(t);
});

const channel = (g: string) => `chat:${g}`;
/** How many Redis connections are subscribed to the group's channel. */
const numsub = async (g: string) => Number(((await redis.pubsub("NUMSUB", channel(g))) as [string, number])[1]);
const listed = async (g: string) => (await redis.pubsub("CHANNELS", channel(g))) as string[];
/** A typing event published straight to the channel, as another node would. */
const typingFrom = (group: string, user: string) => JSON.stringify({ operation: "typing", group, user, typing_status: "typing" });
const connections = () => metric(node.port, "chat_connections");

t.test("the channel follows the group's sockets on the node: first open subscribes, last close unsubscribes", async (t) => {
  const g = uniqueGroup("sub-follow");
  const other = await connect(t, node.port, uniqueGroup("sub-other"), { user: "o" });
  t.same(await listed(g), [], "no channel before any socket joins the group");
  t.equal(await numsub(g), 0);

  const a = await connect(t, node.port, g, { user: "a" });
  // The upgrade awaits the subscription, so it is in place as soon as the socket is open.
  t.same(await listed(g), [channel(g)], "subscribed once the first socket is open");
  t.equal(await numsub(g), 1);

  const b = await connect(t, node.port, g, { user: "b" });
  t.equal(await numsub(g), 1, "a second socket does not subscribe the node twice");

  await a.close();
  t.ok(await eventually(async () => (await connections()) === 2), "the node has seen the first socket leave");
  t.equal(await numsub(g), 1, "still subscribed while another socket of the group is open");
  t.equal(await redis.publish(channel(g), typingFrom(g, "elsewhere")), 1, "a payload published on the channel reaches the node");
  t.same(await b.next((f) => f.operation === "typing"), { operation: "typing", group: g, user: "elsewhere", typing_status: "typing" }, "and its remaining socket");

  await b.close();
  t.ok(await eventually(async () => (await numsub(g)) === 0, 2_000), "unsubscribed after the last socket leaves");
  t.same(await listed(g), []);
  t.equal(await redis.publish(channel(g), typingFrom(g, "nobody")), 0, "nobody hears the channel any more");
  await other.nothingMore(t, 0);
});

t.test("a socket that joins right after the last one left is subscribed again", async (t) => {
  const g = uniqueGroup("sub-rejoin");
  const a = await connect(t, node.port, g, { user: "a" });
  t.equal(await numsub(g), 1);
  // Close and rejoin back to back: the unsubscribe and the new subscribe must land in that order.
  a.ws.close();
  const b = await connect(t, node.port, g, { user: "b" });
  await a.closed;
  t.ok(await eventually(async () => (await connections()) === 1), "the node has seen the first socket leave");
  t.equal(await numsub(g), 1, "subscribed while the new socket is open");
  t.equal(await redis.publish(channel(g), typingFrom(g, "elsewhere")), 1);
  t.match(await b.next(), { operation: "typing", user: "elsewhere" }, "the new socket hears the channel");
  await b.close();
  t.ok(await eventually(async () => (await numsub(g)) === 0, 2_000), "unsubscribed after it leaves");
});

t.test("two nodes with sockets in the same group are two subscribers; a node without one is none", async (t) => {
  const g = uniqueGroup("sub-two");
  const second = await spawnNode(t, { DATABASE_URL: url, REDIS_URL });
  await untilReady(second.port);
  const a = await connect(t, node.port, g, { user: "a" });
  t.equal(await numsub(g), 1, "only the node with a socket in the group is subscribed");
  const b = await connect(t, second.port, g, { user: "b" });
  t.equal(await numsub(g), 2, "each node with a socket in the group subscribes once");

  t.match(await a.request({ operation: "create", type: "text", body: "hi" }), { operation: "ack", seq: 1 });
  t.match(await b.next((f) => f.operation === "create"), { seq: 1, message: { body: "hi" } }, "the other node relays the event");

  await b.close();
  t.ok(await eventually(async () => (await numsub(g)) === 1, 2_000), "the second node unsubscribes when its socket leaves");
  await a.close();
  t.ok(await eventually(async () => (await numsub(g)) === 0, 2_000), "and the first when its socket leaves");
});
