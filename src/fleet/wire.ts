// Wires fleet awareness and rebalancing into a node (with Redis only: one node alone has no
// fleet). Every heartbeat (1 s) the node reads the fleet and, above its fair share, sheds.
import { createHash } from "node:crypto";
import type { Config } from "../config/env.ts";
import type { Gateway } from "../gateway/gateway.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { CLOSE_REBALANCE } from "../protocol/index.ts";
import { BUNDLE_WIRE } from "../chat/bundle.ts";
import { Fleet } from "./fleet.ts";
import { toShed } from "./rebalance.ts";

export const FLEET_HEARTBEAT_MS = 1_000;
/** Three missed heartbeats and a node is out of the fleet. */
export const FLEET_TTL_MS = 3_500;

/** The nodes of one fleet share a database: its host, port and name (never its credentials) name the fleet. */
export function fleetName(config: Config): string {
  const where = config.DATABASE_URL ? new URL(config.DATABASE_URL) : null;
  const id = where ? `${where.hostname}:${where.port}${where.pathname}` : `pglite:${config.DATA_DIR}`;
  return createHash("sha256").update(id).digest("hex").slice(0, 16);
}

export function startFleet(config: Config, log: Logger, metrics: Metrics, gateway: Gateway): Fleet | null {
  const target = config.REDIS_CLUSTER_NODES
    ? { nodes: config.REDIS_CLUSTER_NODES, password: config.REDIS_CLUSTER_PASSWORD, tls: config.REDIS_CLUSTER_TLS }
    : config.REDIS_URL;
  if (!target) return null;
  let lastError = "";
  const opts = { tolerance: config.REBALANCE_TOLERANCE, ratePerSecond: config.REBALANCE_RATE, minExcess: config.REBALANCE_MIN_SOCKETS };
  const fleet = new Fleet(target, { fleet: fleetName(config), heartbeatMs: FLEET_HEARTBEAT_MS, ttlMs: FLEET_TTL_MS, wire: BUNDLE_WIRE }, () => gateway.connectionCount, {
    onView: (view) => {
      lastError = "";
      metrics.fleetNodes.set(view.size);
      metrics.fleetSockets.set(view.total);
      metrics.fleetWire.set(view.wire);
      const n = opts.ratePerSecond > 0 ? toShed(view, opts, FLEET_HEARTBEAT_MS) : 0;
      if (n === 0) return;
      const shed = gateway.shed(n, CLOSE_REBALANCE, "rebalance: reconnect elsewhere");
      metrics.rebalanceClosed.inc(shed);
      log.info({ shed, mine: view.mine, nodes: view.size, mean: Math.round(view.total / view.size) }, "rebalance: closed sockets above the fair share");
    },
    onError: (err) => {
      metrics.fleetNodes.set(0);
      metrics.fleetWire.set(0);
      if (err.message !== lastError) log.warn({ err: err.message }, "fleet: redis error");
      lastError = err.message;
    },
  });
  void fleet.start();
  return fleet;
}
