// Fleet awareness: every node writes its open socket count and a heartbeat time into one Redis
// hash (`{chatfleet}:<fleet>`, one slot, so a Redis Cluster works too) about once a second, and
// reads the whole hash back. Entries older than the TTL are nodes that died or left: they are not
// counted (and are removed). From that every node knows the fleet's size and the mean socket count,
// which is what the rebalancer (rebalance.ts) needs. A node leaving cleanly deletes its entry.
// An entry is `<sockets> <heartbeat ms>[ <wire>]`: `wire` is the bus wire version the node reads
// (src/chat/bundle.ts), absent from the entries of nodes before it (version 1; they read the first
// two numbers only); the view's `wire` is the lowest of the live nodes', what a payload every node
// can read may use.
// Different from presence (src/presence): that tracks users in groups; this tracks nodes.
import { randomUUID } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { redisClient, type RedisTarget } from "../redis/client.ts";

/** The hash of one fleet: the nodes that share a database (so deployments sharing a Redis stay apart). */
export const fleetKey = (fleet: string) => `{chatfleet}:${fleet}`;

export interface FleetView {
  /** Live nodes, this one included. */
  size: number;
  /** Sockets over the live nodes. */
  total: number;
  /** This node's sockets when it wrote its heartbeat. */
  mine: number;
  /**
   * How far the fleet's total moved since this node's previous view (null on the first). The other
   * nodes' counts are up to a heartbeat old while `mine` is current, so while the fleet is still
   * filling or emptying fast a node would look above the mean only because it is counted later.
   */
  moved: number | null;
  /** The lowest bus wire version among the live nodes (1 for a node that does not say). */
  wire: number;
}

export interface FleetOptions {
  /** Which fleet (see fleetKey). */
  fleet: string;
  heartbeatMs: number;
  /** A node whose heartbeat is older than this is gone. */
  ttlMs: number;
  /** The bus wire version this node reads (default 1: not said). */
  wire?: number;
}

export class Fleet {
  readonly id = randomUUID();
  private readonly redis: Redis | Cluster;
  private timer: NodeJS.Timeout | null = null;
  private latest: FleetView | null = null;
  private lastTotal: number | null = null;
  private stopped = false;
  private readonly key: string;

  constructor(
    target: RedisTarget,
    private readonly opts: FleetOptions,
    /** This node's open sockets now. */
    private readonly sockets: () => number,
    private readonly hooks: { onView?: (view: FleetView) => void; onError?: (err: Error) => void } = {},
  ) {
    this.redis = redisClient(target, { connectionName: "chatroom-fleet" });
    this.redis.on("error", (err: Error) => hooks.onError?.(err));
    this.key = fleetKey(opts.fleet);
  }

  /** The last view read (null until the first heartbeat, or while Redis does not answer). */
  get view(): FleetView | null {
    return this.latest;
  }

  async start(): Promise<void> {
    await this.redis.connect().catch((err: Error) => this.hooks.onError?.(err));
    await this.beat();
  }

  /** Writes this node's count and reads everyone's; a failure leaves no view (the rebalancer waits). */
  async beat(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.timer ?? undefined);
    try {
      const now = Date.now();
      const mine = this.sockets();
      const entry = this.opts.wire === undefined ? `${mine} ${now}` : `${mine} ${now} ${this.opts.wire}`;
      const [, [, all]] = (await this.redis
        .multi()
        .hset(this.key, this.id, entry)
        .hgetall(this.key)
        .exec()) as [[Error | null, unknown], [Error | null, Record<string, string>]];
      let size = 0;
      let total = 0;
      let wire = Infinity;
      const gone: string[] = [];
      for (const [id, value] of Object.entries(all ?? {})) {
        const [count, at, speaks = 1] = value.split(" ").map(Number);
        if (!Number.isFinite(count) || !Number.isFinite(at) || now - at! > this.opts.ttlMs) gone.push(id);
        else {
          size++;
          total += count!;
          wire = Math.min(wire, Number.isInteger(speaks) && speaks >= 1 ? speaks : 1);
        }
      }
      if (gone.length) await this.redis.hdel(this.key, ...gone);
      const moved = this.lastTotal === null ? null : Math.abs(total - this.lastTotal);
      this.lastTotal = total;
      // Its own entry is in `all` (written just above), so `wire` is never Infinity here.
      this.latest = { size, total, mine, moved, wire: size > 0 ? wire : 1 };
      this.hooks.onView?.(this.latest);
    } catch (err) {
      this.latest = null;
      this.hooks.onError?.(err as Error);
    } finally {
      if (!this.stopped) this.timer = setTimeout(() => void this.beat(), this.opts.heartbeatMs);
    }
  }

  /** Leaves the fleet: stops the heartbeat and removes this node's entry. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer ?? undefined);
    await this.redis.hdel(this.key, this.id).catch(() => {});
    this.redis.disconnect();
  }
}
