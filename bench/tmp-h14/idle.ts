import { RedisClusterBus } from "../../src/bus/redis-cluster-bus.ts";
import { startRedisCluster } from "../../scripts/cluster/redis-processes.ts";
const cluster = await startRedisCluster();
try {
  const nodes = cluster.nodesEnv.split(",").map((a) => ({ host: "127.0.0.1", port: Number(a.split(":")[1]) }));
  const bus = new RedisClusterBus({ nodes }, () => {});
  await bus.ready();
  for (let i = 0; i < 50; i++) await bus.subscribe(`idle-${i}`);
  await new Promise((r) => setTimeout(r, 3000));
  const c0 = process.cpuUsage(); const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 20000));
  const c = process.cpuUsage(c0);
  console.log(`idle cluster bus: ${((c.user + c.system) / 1000 / ((Date.now() - t0) / 1000)).toFixed(1)} ms CPU per s`);
  await bus.close();
} finally { await cluster.stop(); }
