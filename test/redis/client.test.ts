// The node's bookkeeping client (src/redis/client.ts), for a single Redis and for a Redis
// Cluster's seed list: created unconnected, and a command while Redis is unreachable fails at
// once instead of waiting in a queue.
import t from "tap";
import type { Cluster, Redis } from "ioredis";
import { redisClient } from "../../src/redis/client.ts";
import { freePort } from "../helpers/redis-server.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

t.test("single Redis: unconnected until connect(), then answers", async (t) => {
  const r = redisClient(REDIS_URL, { connectionName: "chatroom-test" }) as Redis;
  t.teardown(() => r.disconnect());
  t.equal(r.status, "wait", "nothing is opened before connect()");
  await r.connect();
  t.equal(await r.ping(), "PONG");
  t.equal(await r.client("GETNAME"), "chatroom-test", "the connection carries its name");
});

t.test("single Redis unreachable: a command fails at once, not queued", async (t) => {
  const r = redisClient(`redis://127.0.0.1:${await freePort()}`, { connectionName: "chatroom-test" }) as Redis;
  t.teardown(() => r.disconnect());
  const began = Date.now();
  await t.rejects(r.ping(), /Stream isn't writeable|enableOfflineQueue/);
  t.ok(Date.now() - began < 1_000, "rejected without waiting for a connection");
});

t.test("Redis Cluster seeds: unconnected, no offline queue, TLS keeps host names", async (t) => {
  const port = await freePort();
  const c = redisClient({ nodes: [{ host: "redis.example.internal", port }], tls: true, password: "pw" }, { connectionName: "chatroom-test" }) as Cluster;
  t.teardown(() => c.disconnect());
  t.equal(c.status, "wait", "nothing is opened before connect()");
  t.equal(c.options.enableOfflineQueue, false);
  t.equal(c.options.enableAutoPipelining, false, "no auto-pipelining");
  t.match(c.options.redisOptions, { password: "pw", tls: {}, connectionName: "chatroom-test", maxRetriesPerRequest: 1 });
  const looked: string[] = [];
  c.options.dnsLookup!("redis.example.internal", (_err, address) => looked.push(address));
  t.same(looked, ["redis.example.internal"], "the announced host name is used as it is");
  c.on("error", () => {});
  const began = Date.now();
  await t.rejects(c.ping(), /None of startup nodes is available|offline queue|enableOfflineQueue/, "a command with no node reachable fails");
  t.ok(Date.now() - began < 2_000, "at once, not after waiting in a queue");
});

t.test("Redis Cluster without TLS resolves names as usual", async (t) => {
  const c = redisClient({ nodes: [{ host: "127.0.0.1", port: await freePort() }] }, { connectionName: "chatroom-test" }) as Cluster;
  t.teardown(() => c.disconnect());
  t.equal(c.options.enableAutoPipelining, false);
  t.notOk(c.options.redisOptions?.tls);
});
