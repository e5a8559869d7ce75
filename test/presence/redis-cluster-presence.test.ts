// Presence on a Redis Cluster (REDIS_CLUSTER_NODES): the same shared suite, through a Cluster
// client. Every key carries the `{chatpresence}` hash tag, so each script runs on one shard.
import t from "tap";
import { RedisPresence } from "../../src/presence/redis-presence.ts";
import { privateRedisCluster } from "../helpers/redis-cluster.ts";
import { GRACE_MS, presenceSuite } from "./presence-suite.ts";

const cluster = await privateRedisCluster(t);
const nodes = cluster.nodesEnv.split(",").slice(0, 1).map((a) => ({ host: "127.0.0.1", port: Number(a.split(":")[1]) }));

presenceSuite(
  t,
  async (tt, onChange) => {
    const p = new RedisPresence({ nodes }, { graceMs: GRACE_MS, ttlMs: 1_500 }, onChange);
    tt.teardown(() => p.stop());
    await p.start();
    return p;
  },
  { cluster: true },
);
