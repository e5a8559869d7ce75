// One Redis connection for a node's own bookkeeping (fleet heartbeats, presence scripts): to a
// single Redis (REDIS_URL) or to a Redis Cluster (REDIS_CLUSTER_NODES), with the same behaviour
// either way. Guarantee: the client is created unconnected (`connect()` starts it), never queues
// a command while disconnected (it fails at once, so a caller's own retry or re-sync decides), and
// retries a sent command at most once. Callers that talk to a Cluster keep every key of one call
// in one slot (hash tags). The event bus has its own connections (src/bus/): its needs differ.
import { Cluster, Redis } from "ioredis";
import type { ClusterBusOptions } from "../bus/redis-cluster-bus.ts";

/** Where the node's Redis is: a URL, or the Redis Cluster's seed nodes. */
export type RedisTarget = string | ClusterBusOptions;

export interface ClientOptions {
  /** CLIENT SETNAME, to tell the node's connections apart in `CLIENT LIST`. */
  connectionName: string;
}

export function redisClient(target: RedisTarget, opts: ClientOptions): Redis | Cluster {
  // No auto-pipelining: both callers send a command every few milliseconds at most (presence
  // batches its transitions), where ioredis' pipeline per tick costs more than the write it saves.
  const options = { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, connectionName: opts.connectionName };
  if (typeof target === "string") return new Redis(target, options);
  return new Cluster(target.nodes, {
    lazyConnect: true,
    enableOfflineQueue: false,
    redisOptions: { ...options, ...(target.password ? { password: target.password } : {}), ...(target.tls ? { tls: {} } : {}) },
    // Managed clusters behind TLS announce host names that must not be resolved to IPs first
    // (as the bus does, src/bus/redis-cluster-bus.ts).
    ...(target.tls ? { dnsLookup: (address: string, cb: (err: null, a: string) => void) => cb(null, address) } : {}),
  });
}
