// Presence at its default settings (PRESENCE_GRACE_MS 5000, PRESENCE_TTL_S 15), on two real
// node processes and a private redis-server: a reconnect after 3 s sends nothing, the last tab's
// leave comes 5 s after it closed, and a SIGKILLed node's users leave within 15 s + 5 s.
import t from "tap";
import { connect } from "../helpers/client.ts";
import { spawnNode } from "../helpers/node.ts";
import { uniqueGroup } from "../helpers/probe.ts";
import { privateRedis } from "../helpers/redis-server.ts";
import { freshDatabase } from "../helpers/services.ts";

const GRACE_MS = 5_000;
const TTL_MS = 15_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const redis = await privateRedis(t);
const url = await freshDatabase(t);
const env = { DATABASE_URL: url, REDIS_URL: redis.url };
const [a, b, doomed] = await Promise.all([spawnNode(t, env), spawnNode(t, env), spawnNode(t, env)]);

t.test("default grace: a reconnect after 3 s sends nothing; the leave comes 5 s after the last tab closed", async (t) => {
  const g = uniqueGroup("defaults");
  const watcher = await connect(t, a!.port, g, { user: "watcher" }, { presence: true });
  await watcher.next((f) => f.operation === "join" && f.user === "watcher");
  const bob = await connect(t, b!.port, g, { user: "bob" }, { presence: true });
  await watcher.next((f) => f.operation === "join" && f.user === "bob");
  await bob.close();
  await sleep(3_000);
  const again = await connect(t, a!.port, g, { user: "bob" }, { presence: true });
  await sleep(500);
  t.same(watcher.received, [], "no leave, no join");
  const closedAt = Date.now();
  await again.close();
  const leave = await watcher.next((f) => f.operation === "leave", GRACE_MS + 5_000);
  const took = Date.now() - closedAt;
  t.same(leave, { operation: "leave", group: g, user: "bob" });
  t.ok(took >= GRACE_MS - 50 && took <= GRACE_MS + 2_000, `the leave came ${took} ms after the close`);
});

t.test("default lease: a SIGKILLed node's users leave within PRESENCE_TTL_S + PRESENCE_GRACE_MS (20 s)", async (t) => {
  const g = uniqueGroup("defaults-kill");
  const watcher = await connect(t, a!.port, g, { user: "watcher" }, { presence: true });
  await watcher.next((f) => f.operation === "join" && f.user === "watcher");
  await connect(t, doomed!.port, g, { user: "carl" }, { presence: true });
  await watcher.next((f) => f.operation === "join" && f.user === "carl");
  const killedAt = Date.now();
  doomed!.child.kill("SIGKILL");
  const leave = await watcher.next((f) => f.operation === "leave", TTL_MS + GRACE_MS + 5_000);
  const took = Date.now() - killedAt;
  t.same(leave, { operation: "leave", group: g, user: "carl" });
  t.ok(took <= TTL_MS + GRACE_MS, `carl left ${took} ms after the kill (bound ${TTL_MS + GRACE_MS} ms)`);
  t.comment(`leave latency after SIGKILL at the defaults: ${took} ms`);
});
