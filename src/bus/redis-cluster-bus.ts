// The Redis Cluster bus (REDIS_CLUSTER_NODES): sharded pub/sub, so each group's events cross only
// the shard that owns the group's slot and the fleet's pub/sub scales with the primaries.
// SPUBLISH goes to the primary of `chat:{<group>}`'s slot; ioredis keeps one subscriber
// connection per primary (`shardedSubscribers`) and sends each SSUBSCRIBE to the shard that owns
// the channel, so a node subscribes, per shard, only to the groups it serves.
//
// Failover: when a primary dies, its shard's subscriber connection ends; ioredis refreshes the
// slot map until a replica has been promoted, reconnects to it and resubscribes the shard's
// channels, then emits `subscribersReady`. Payloads published in between are lost to this bus
// (as with a Redis restart), and the node repairs them from the store: `onResubscribed` runs the
// sequencer's catch-up. Publishes to a shard without a primary are retried by ioredis for
// about `maxRedirections × retryDelayOnFailover` and then rejected; the event is stored already.
// Those retried publishes go out together once a replica is promoted, not necessarily in publish
// order: the one exception to the bus's order guarantee (the sequencer orders stored events).
//
// Publishing: ioredis' cluster routing (slot lookup, redirection handling, a retry wrapper per
// command) roughly doubled the bus's CPU per payload against the one-Redis bus (bench/bus.ts). A
// publish therefore goes straight to the connection of the primary that ioredis' own slot map
// names for the channel, when that connection is ready; a publish it rejects (MOVED after a slot
// moved, the connection lost mid-write) is sent again through the routed path, which follows the
// redirection or waits out the failover. Before the slot map is loaded, or if ioredis' internals
// ever change shape, every publish takes the routed path.
//
// Receiving and the slot map: each shard's subscriber connection hands its buffers straight to
// the bus (sharded-receive.ts), and ioredis' periodic slot refresh (30-110 ms of CPU each time)
// is replaced by a cheap check (cluster-slot-watch.ts).
// bench/bus-instructions.ts counts both buses' instructions per payload.
import calculateSlot from "cluster-key-slot";
import { Cluster, type Redis } from "ioredis";
import { withDeadline } from "../deadline.ts";
import type { BusHandler, EventBus } from "./bus.ts";
import { watchClusterSlots } from "./cluster-slot-watch.ts";
import { receiveShardedDirectly } from "./sharded-receive.ts";
import { PublishBudget } from "./publish-budget.ts";
import { DEFAULT_BUS_QUEUE_BYTES, groupOfShardChannel, shardChannelOf, type RedisBusHooks } from "./redis-bus.ts";

export interface ClusterBusOptions {
  /** `host:port` of at least one cluster node; the rest are discovered. */
  nodes: { host: string; port: number }[];
  password?: string;
  /** TLS to every node (managed clusters); the nodes' announced addresses are used as they are. */
  tls?: boolean;
  /** Publish straight to the slot's primary (default true); false = ioredis' routed path only (bench/bus.ts compares). */
  directPublish?: boolean;
  /** How often the slot watch compares ioredis' slot map with the cluster's (default SLOT_CHECK_MS). */
  slotCheckMs?: number;
}

/** The parts of ioredis' Cluster the direct publish reads (not in its typings). */
interface ClusterInternals {
  slots?: (string[] | undefined)[];
  connectionPool?: { getInstanceByKey?(key: string): Redis | undefined };
}

/** The shortest time between two catch-ups after resubscribing. */
export const RESUBSCRIBE_COALESCE_MS = 1_000;

/** How often the slot watch checks ioredis' slot map against the cluster's (one CLUSTER SLOTS). */
export const SLOT_CHECK_MS = 5_000;

export class RedisClusterBus implements EventBus {
  private readonly cluster: Cluster;
  private readonly budget: PublishBudget;
  private catchUpTimer: NodeJS.Timeout | null = null;
  private readonly stopSlotWatch: () => void;
  /** How many shard subscriber connections hand their messages straight to the bus (tests read it). */
  readonly directReceivers: () => number;
  /** Slot-map refreshes the slot watch asked for (tests read it). */
  slotRefreshes = 0;
  /** Publishes sent straight to the slot's primary, and those sent through ioredis' routing (tests and bench read these). */
  readonly publishes = { direct: 0, routed: 0 };

  constructor(
    opts: ClusterBusOptions,
    onPayload: BusHandler,
    hooks: RedisBusHooks = {},
    maxQueueBytes = DEFAULT_BUS_QUEUE_BYTES,
  ) {
    this.cluster = new Cluster(opts.nodes, {
      shardedSubscribers: true,
      // Publishes wait while a shard has no primary: 40 × 100 ms covers a loopback failover.
      maxRedirections: 40,
      retryDelayOnFailover: 100,
      retryDelayOnClusterDown: 100,
      // No periodic refresh by ioredis (30-110 ms of CPU each): failures refresh the slot map at
      // once (a publish on a closed connection or MOVED, a sharded subscriber that ends), and the
      // slot watch (cluster-slot-watch.ts) is the cheap backstop.
      slotsRefreshInterval: 0,
      redisOptions: {
        connectionName: "chatroom",
        maxRetriesPerRequest: null,
        ...(opts.password ? { password: opts.password } : {}),
        ...(opts.tls ? { tls: {} } : {}),
      },
      // Managed clusters behind TLS announce host names that must not be resolved to IPs first.
      ...(opts.tls ? { dnsLookup: (address: string, cb: (err: null, a: string) => void) => cb(null, address) } : {}),
    });
    // The budget bounds what waits in bytes: it holds publishes while the cluster is not ready,
    // and counts those ioredis holds (a node connecting, a retry across a failover) until they
    // settle. ioredis' own queues stay on: without them a publish to a node still connecting is
    // rejected and retried elsewhere, out of order.
    this.budget = new PublishBudget({
      maxBytes: maxQueueBytes,
      ready: () => this.cluster.status === "ready",
      send: opts.directPublish === false ? (group, payload) => this.routed(shardChannelOf(group), payload) : (group, payload) => this.send(group, payload),
      onDrop: hooks.onPublishDropped,
    });
    this.cluster.on("ready", () => this.budget.flush());
    this.stopSlotWatch = watchClusterSlots(this.cluster, opts.slotCheckMs ?? SLOT_CHECK_MS, () => this.slotRefreshes++);
    const onError = hooks.onError ?? (() => {});
    this.cluster.on("error", onError);
    this.cluster.on("node error", onError);
    // Every reset of the per-shard subscribers (start, failover, slot moves) resubscribes the
    // channels; what was published meanwhile is read back from the store. While a shard has no
    // primary, ioredis resets every few milliseconds (each reconnect attempt fails at once), so
    // the catch-ups are coalesced: the first at once, then at most one per RESUBSCRIBE_COALESCE_MS,
    // always one after the last reset.
    let resets = 0;
    let lastRun = 0;
    this.cluster.on("subscribersReady", () => {
      if (resets++ === 0 || this.catchUpTimer) return; // the first reset is the start: nothing to catch up on
      this.catchUpTimer = setTimeout(() => {
        this.catchUpTimer = null;
        lastRun = Date.now();
        hooks.onResubscribed?.();
      }, Math.max(0, lastRun + RESUBSCRIBE_COALESCE_MS - Date.now()));
    });
    // Buffers, not strings: relayed to the sockets without a UTF-8 decode/encode. Each shard's
    // subscriber connection hands them over directly (sharded-receive.ts); one it could not take
    // over still forwards them through the Cluster.
    const deliver = (channel: Buffer, message: Buffer) => onPayload(groupOfShardChannel(channel), message);
    this.cluster.on("smessageBuffer", deliver);
    this.directReceivers = receiveShardedDirectly(this.cluster, deliver);
  }

  publish(group: string, payload: string): Promise<void> {
    return this.budget.publish(group, payload);
  }

  private routed(channel: string, payload: string): Promise<unknown> {
    this.publishes.routed++;
    return this.cluster.spublish(channel, payload);
  }

  /** SPUBLISH on the slot's primary connection when ioredis knows it and it is ready, else routed. */
  private send(group: string, payload: string): Promise<unknown> {
    const channel = shardChannelOf(group);
    const c = this.cluster as unknown as ClusterInternals;
    const key = c.slots?.[calculateSlot(channel)]?.[0];
    const node = key === undefined ? undefined : c.connectionPool?.getInstanceByKey?.(key);
    if (node?.status !== "ready") return this.routed(channel, payload);
    this.publishes.direct++;
    // Rejected (MOVED, ASK, TRYAGAIN, the connection gone): once more through the routed path.
    return node.spublish(channel, payload).catch(() => this.routed(channel, payload));
  }

  /** Payload bytes waiting for the cluster or in flight (MAX_BUS_QUEUE_BYTES bounds it). */
  get queuedBytes(): number {
    return this.budget.bytes;
  }

  async subscribe(group: string): Promise<void> {
    await this.cluster.ssubscribe(shardChannelOf(group));
  }

  async unsubscribe(group: string): Promise<void> {
    await this.cluster.sunsubscribe(shardChannelOf(group));
  }

  isUp(): boolean {
    return this.cluster.status === "ready";
  }

  /** Resolves once the cluster's slot map is loaded (or rejects after `ms`). */
  async ready(ms = 10_000): Promise<void> {
    if (this.cluster.status === "ready") return;
    await withDeadline(new Promise<void>((resolve) => this.cluster.once("ready", () => resolve())), ms, () => new Error(`Redis Cluster not ready after ${ms} ms`));
  }

  async close(): Promise<void> {
    this.stopSlotWatch();
    if (this.catchUpTimer) clearTimeout(this.catchUpTimer);
    this.catchUpTimer = null;
    this.budget.close();
    // QUIT waits for every node's answer; a node that is down would hold it forever.
    await withDeadline(this.cluster.quit(), 1_000, () => new Error("quit timed out")).catch(() => this.cluster.disconnect());
  }
}
