// Presence from the configuration: Redis (REDIS_URL or REDIS_CLUSTER_NODES), in-process for the
// embedded default, or none with PRESENCE=off (no join/leave, `presence` answers unavailable).
import type { Config } from "../config/env.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { MemoryPresence } from "./memory-presence.ts";
import type { Presence, PresenceListener } from "./presence.ts";
import { RedisPresence } from "./redis-presence.ts";

/** PRESENCE=off: nobody is tracked and nothing is announced. */
export class NoPresence implements Presence {
  readonly held = 0;
  open(): void {}
  close(): void {}
  async snapshot(): Promise<never> {
    throw new Error("presence is off (PRESENCE=off)");
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}

/** Starts the node's presence (Redis: holds its lease once this resolves). */
export async function presenceFromConfig(config: Config, metrics: Metrics, log: Logger, onChange: PresenceListener): Promise<Presence> {
  if (config.PRESENCE === "off") return new NoPresence();
  const opts = { graceMs: config.PRESENCE_GRACE_MS, ttlMs: config.PRESENCE_TTL_S * 1000 };
  if (!config.REDIS_URL && !config.REDIS_CLUSTER_NODES) return new MemoryPresence(opts, onChange);
  const target = config.REDIS_CLUSTER_NODES
    ? { nodes: config.REDIS_CLUSTER_NODES, password: config.REDIS_CLUSTER_PASSWORD, tls: config.REDIS_CLUSTER_TLS }
    : config.REDIS_URL!;
  let lastError = "";
  const presence = new RedisPresence(target, opts, onChange, {
    onLeaseRenewed: () => metrics.presenceLeaseRenewals.inc(),
    onLeaseExpired: (node, users) => {
      metrics.presenceLeaseExpiries.inc();
      log.info({ node, users }, "presence: reaped a node whose lease ran out");
    },
    onResync: (reason) => {
      metrics.presenceResyncs.inc({ reason });
      log.info({ reason }, "presence: re-registering this node's share");
    },
    onDirtyAnnounced: (kind, group, user) => log.info({ kind, group, user }, "presence: announcing a change made while Redis was away"),
    onError: (err) => {
      // ioredis retries forever; log each distinct failure once.
      if (err.message !== lastError) log.warn({ err: err.message }, "presence: redis error");
      lastError = err.message;
    },
  });
  try {
    await presence.start();
  } catch (err) {
    await presence.stop();
    throw new Error(`Redis is not reachable for presence: ${(err as Error).message}`);
  }
  log.info({ node: presence.id, ttlS: config.PRESENCE_TTL_S, graceMs: config.PRESENCE_GRACE_MS }, "presence lease held");
  return presence;
}
