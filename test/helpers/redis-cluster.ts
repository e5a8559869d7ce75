// A private Redis Cluster for one test file: 3 primaries and 3 replicas, real redis-server
// processes on free loopback ports (scripts/cluster/redis-processes.ts, shared with the bench).
// Nothing is persisted. Every process is killed by its PID at teardown. `cluster-node-timeout` is
// short so that a killed primary's replica is promoted within a few seconds, as a managed cluster
// does in tens of seconds.
import type { Test } from "tap";
import { startRedisCluster, type RedisClusterProcesses, type RedisProcess } from "../../scripts/cluster/redis-processes.ts";

export type ClusterNodeProcess = RedisProcess;
export type PrivateRedisCluster = Omit<RedisClusterProcesses, "stop">;

/** Starts a 3-primary/3-replica cluster; every process is killed at teardown. */
export async function privateRedisCluster(t: Test): Promise<PrivateRedisCluster> {
  const cluster = await startRedisCluster();
  t.teardown(() => cluster.stop());
  return cluster;
}
