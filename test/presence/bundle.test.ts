// A presence tick's frames of a group travel over Redis as one bundle (src/chat/bundle.ts) once
// every node of the fleet reads bundles, and one by one while a node of an earlier version is
// live (its fleet entry has no wire version): such a node relays whatever its group channels carry
// to its sockets. Every node reads both forms: clients get the same join frames either way. A
// private redis-server, so the fleet hash holds this test's nodes only.
import t from "tap";
import { Redis } from "ioredis";
import { BUNDLE_WIRE } from "../../src/chat/bundle.ts";
import { loadConfig } from "../../src/config/env.ts";
import { Fleet, fleetKey } from "../../src/fleet/fleet.ts";
import { fleetName } from "../../src/fleet/wire.ts";
import { connect } from "../helpers/client.ts";
import { startInProcess } from "../helpers/node.ts";
import { eventually, metric, uniqueGroup, untilReady } from "../helpers/probe.ts";
import { privateRedis } from "../helpers/redis-server.ts";
import { freshDatabase } from "../helpers/services.ts";

const redis = await privateRedis(t);
const r = new Redis(redis.url);
t.teardown(() => r.quit());

const url = await freshDatabase(t);
const env = { DATABASE_URL: url, REDIS_URL: redis.url, PRESENCE_GRACE_MS: "10000", PRESENCE_BATCH_MS: "2500" };
const fleetHash = fleetKey(fleetName(loadConfig(env)));
const node = await startInProcess(t, env);
await untilReady(node.port);

/** Everything published to the group's bus channel, as it went over Redis. */
async function tap(group: string): Promise<string[]> {
  const sub = new Redis(redis.url);
  t.teardown(() => sub.quit());
  const heard: string[] = [];
  sub.on("message", (_channel: string, message: string) => heard.push(message));
  await sub.subscribe(`chat:${group}`);
  return heard;
}

const arrivals = (g: string, users: string[]) => Promise.all(users.map((user) => connect(t, node.port, g, { user }, { presence: true })));

t.test("the fleet view's wire is the lowest of the live nodes'; an entry without one is a version-1 node", async (t) => {
  const key = fleetKey("wire-test");
  const fleet = new Fleet(redis.url, { fleet: "wire-test", heartbeatMs: 60_000, ttlMs: 3_500, wire: BUNDLE_WIRE }, () => 3);
  t.teardown(() => fleet.stop());
  await fleet.start();
  t.match(fleet.view, { size: 1, mine: 3, wire: BUNDLE_WIRE });
  t.match(await r.hget(key, fleet.id), new RegExp(`^3 \\d+ ${BUNDLE_WIRE}$`), "its entry says its wire version");
  await r.hset(key, "old-node", `5 ${Date.now()}`);
  await fleet.beat();
  t.match(fleet.view, { size: 2, total: 8, wire: 1 }, "a node that does not say is version 1");
  await r.hset(key, "old-node", `5 ${Date.now()} junk`);
  await fleet.beat();
  t.match(fleet.view, { size: 2, wire: 1 }, "an unreadable version counts as 1");
  await r.hset(key, "old-node", `5 ${Date.now() - 10_000}`);
  await fleet.beat();
  t.match(fleet.view, { size: 1, wire: BUNDLE_WIRE }, "once it is gone, the fleet reads bundles");
});

t.test("while a node of an earlier version is live, a tick's joins go one by one; once it is gone, as one bundle", async (t) => {
  const g = uniqueGroup("wire");
  const heard = await tap(g);
  // An old node: its entry has no wire version (kept fresh, as its heartbeat would).
  const beat = () => r.hset(fleetHash, "old-node", `0 ${Date.now()}`);
  await beat();
  const heartbeat = setInterval(() => void beat(), 300);
  t.teardown(() => clearInterval(heartbeat));
  t.ok(await eventually(async () => (await metric(node.port, "chat_fleet_wire")) === 1, 5_000), "the node sees a version-1 node");
  const watcher = await connect(t, node.port, g, { user: "watcher" }, { presence: true });
  await watcher.next((f) => f.operation === "join" && f.user === "watcher");
  const mixed = ["m1", "m2", "m3"];
  await arrivals(g, mixed);
  for (const u of mixed) await watcher.next((f) => f.operation === "join" && f.user === u);
  t.ok(heard.every((p) => p.startsWith("{")), "only plain frames on the channel");
  t.same(heard.map((p) => JSON.parse(p).user).sort(), [...mixed, "watcher"], "one publish per join");

  clearInterval(heartbeat);
  await r.hdel(fleetHash, "old-node");
  t.ok(await eventually(async () => (await metric(node.port, "chat_fleet_wire")) === BUNDLE_WIRE, 5_000), "the fleet reads bundles again");
  heard.length = 0;
  const later = ["b1", "b2", "b3"];
  await arrivals(g, later);
  const joins = [];
  for (const _ of later) joins.push(await watcher.next((f) => f.operation === "join"));
  t.same(joins.map((f) => (f as { user: string }).user).sort(), later, "the watcher gets each join as its own frame");
  await watcher.nothingMore(t, 200);
  t.ok(heard.length < later.length, `fewer publishes than joins: ${heard.length} for ${later.length}`);
  t.ok(heard.some((p) => p.startsWith("#frames\n")), "a bundle went over Redis");
  const frames = heard.flatMap((p) => (p.startsWith("#frames\n") ? p.slice(8).split("\n") : [p]));
  t.same(frames.map((f) => JSON.parse(f).user).sort(), later, "it carries the joins, each serialised once");
});

t.test("a node reads both forms from the bus: a plain frame (an older node's) and a bundle; an unreadable bundle is dropped whole", async (t) => {
  const g = uniqueGroup("forms");
  const watcher = await connect(t, node.port, g, { user: "watcher" }, { presence: true });
  await watcher.next((f) => f.operation === "join" && f.user === "watcher");
  const frame = (user: string, operation = "join") => JSON.stringify({ operation, group: g, user });
  await r.publish(`chat:${g}`, frame("old"));
  t.same(await watcher.next(), { operation: "join", group: g, user: "old" }, "a plain frame, as an older node publishes it");
  await r.publish(`chat:${g}`, `#frames\n${frame("x")}\n${frame("y", "leave")}\n${frame("z")}`);
  t.same([await watcher.next(), await watcher.next(), await watcher.next()], [
    { operation: "join", group: g, user: "x" },
    { operation: "leave", group: g, user: "y" },
    { operation: "join", group: g, user: "z" },
  ], "a bundle's frames, in order");
  await r.publish(`chat:${g}`, `#frames\n${frame("half")}\nnot a frame`);
  await r.publish(`chat:${g}`, `#frames9\n${frame("future")}`);
  await r.publish(`chat:${g}`, frame("after"));
  t.same(await watcher.next(), { operation: "join", group: g, user: "after" }, "nothing of the unreadable bundles reached the socket");
  await watcher.nothingMore(t, 200);
});
