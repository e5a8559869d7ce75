// Presence shared through Redis (layout and scripts: redis-scripts.ts). The node's own holds
// (holds.ts) are the truth about its sockets; Redis holds the union over the live nodes. Each
// Redis call is one atomic script, sent on a connection of its own (never queued while Redis is
// down: a failed call marks its pairs dirty and the node re-syncs its whole share once Redis is
// back, then announces what changed meanwhile). A node's transitions wait up to
// TRANSITION_WINDOW_MS and go together in one script call (at most TRANSITION_BATCH each), in
// order: a connect storm costs one call per window, not one per connect, and nothing more than
// one call per transition when quiet. The wait adds nothing clients see: the join/leave frames
// wait for the presence tick anyway (src/chat/presence-batch.ts).
import { randomUUID } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import { redisClient, type RedisTarget } from "../redis/client.ts";
import { withDeadline } from "../deadline.ts";
import { LocalHolds, pairKey, splitPair } from "./holds.ts";
import type { Presence, PresenceChange, PresenceHooks, PresenceListener, PresenceOptions, PresenceSnapshot } from "./presence.ts";
import { CHECK, CUT, groupKey, NODES_KEY, REAP, RENEW, SYNC, TRANSITIONS } from "./redis-scripts.ts";

type Script = (key: string, ...args: (string | number)[]) => Promise<unknown>;
type Scripts = Record<"transitions" | "renew" | "cut" | "sync" | "reap" | "check", Script>;

interface Transition {
  kind: PresenceChange["kind"];
  group: string;
  user: string;
  /** The pair's `since` (joins). */
  since: number;
}

/** How long a transition may wait for others to share its script call. */
export const TRANSITION_WINDOW_MS = 10;
/** Transitions per script call at most (a full batch goes at once). */
const TRANSITION_BATCH = 500;

/** Pairs released per reap script call, so a dead node with many users never blocks Redis long. */
const REAP_BATCH = 500;
/** Reap calls per check at most (the rest waits for the next check). */
const REAP_CALLS = 200;

export class RedisPresence implements Presence {
  /** This node's lease id: new at every start, so a restarted node never inherits a dead one's share. */
  readonly id = randomUUID();
  private readonly redis: Redis | Cluster;
  private readonly scripts: Scripts;
  private readonly local: LocalHolds;
  private readonly renewMs: number;
  private readonly reapMs: number;
  private timers: NodeJS.Timeout[] = [];
  private wanted: "silent" | "announce" | null = null;
  private syncing: Promise<void> | null = null;
  private reaping = false;
  /** Transitions whose Redis call failed, announced once Redis has been rebuilt. */
  private readonly dirty = new Map<string, "join" | "leave">();
  private stopped = false;
  private queued: Transition[] = [];
  private queueTimer: NodeJS.Timeout | null = null;

  /** `target`: a Redis URL, or the Redis Cluster's nodes (every key shares one slot). */
  constructor(
    target: RedisTarget,
    private readonly opts: PresenceOptions,
    private readonly onChange: PresenceListener,
    private readonly hooks: PresenceHooks = {},
  ) {
    this.renewMs = Math.max(100, Math.floor(opts.ttlMs / 3));
    this.reapMs = Math.min(1_000, Math.max(100, Math.floor(opts.graceMs / 2)));
    this.redis = redisClient(target, { connectionName: "chatroom-presence" });
    this.redis.on("error", (err: Error) => hooks.onError?.(err));
    let readyBefore = false;
    this.redis.on("ready", () => {
      if (readyBefore) this.resync("silent", "reconnect");
      readyBefore = true;
    });
    const define = (name: string, lua: string) => {
      this.redis.defineCommand(name, { numberOfKeys: 1, lua });
      return (this.redis as unknown as Record<string, Script>)[name]!.bind(this.redis);
    };
    this.scripts = {
      transitions: define("presenceTransitions", TRANSITIONS),
      renew: define("presenceRenew", RENEW),
      cut: define("presenceCut", CUT),
      sync: define("presenceSync", SYNC),
      reap: define("presenceReap", REAP),
      check: define("presenceCheck", CHECK),
    };
    this.local = new LocalHolds(opts.graceMs, (g, u, since) => this.acquire(g, u, since), (g, u) => this.release(g, u));
  }

  open(group: string, user: string): void {
    if (!this.stopped) this.local.open(group, user);
  }

  close(group: string, user: string): void {
    if (!this.stopped) this.local.close(group, user);
  }

  async snapshot(group: string, limit: number): Promise<PresenceSnapshot> {
    const key = groupKey(group);
    const [count, range] = await Promise.all([this.redis.zcard(key), this.redis.zrange(key, "0", String(limit - 1), "WITHSCORES")]);
    const users = [];
    for (let i = 0; i + 1 < range.length; i += 2) users.push({ user: range[i]!, since: Number(range[i + 1]) });
    return { count, users };
  }

  async start(): Promise<void> {
    await withDeadline(this.redis.connect(), 10_000, () => new Error("presence: Redis not ready after 10000 ms"));
    await this.sync(false);
    const every = (ms: number, run: () => void) => {
      const t = setInterval(run, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.renewMs, () => this.renew());
    every(this.reapMs, () => void this.reap());
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    // What is queued is sent, so that Redis knows this node's share when its lease is cut.
    this.sendTransitions();
    this.local.clear();
    // Survivors release this node's users once the grace has passed, unless they came back.
    await withDeadline(this.scripts.cut(NODES_KEY, this.id, this.opts.graceMs), 1_000, () => new Error("presence: lease cut timed out")).catch(
      (err: Error) => this.hooks.onError?.(err),
    );
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  get held(): number {
    return this.local.size;
  }

  private acquire(group: string, user: string, since: number): void {
    this.enqueue({ kind: "join", group, user, since });
  }

  private release(group: string, user: string): void {
    this.enqueue({ kind: "leave", group, user, since: 0 });
  }

  private enqueue(t: Transition): void {
    this.queued.push(t);
    if (this.queued.length >= TRANSITION_BATCH) return this.sendTransitions();
    if (this.queueTimer) return;
    this.queueTimer = setTimeout(() => this.sendTransitions(), TRANSITION_WINDOW_MS);
    this.queueTimer.unref();
  }

  /** Sends the queued transitions in one script call, in order. */
  private sendTransitions(): void {
    if (this.queueTimer) clearTimeout(this.queueTimer);
    this.queueTimer = null;
    const batch = this.queued;
    if (batch.length === 0) return;
    this.queued = [];
    const args: (string | number)[] = [this.id];
    for (const t of batch) args.push(t.kind === "join" ? "a" : "r", t.group, t.user, t.kind === "join" ? t.since : "");
    this.scripts.transitions(NODES_KEY, ...args).then(
      (r) => {
        const out = r as number[];
        if (out[0] === -1) {
          for (const t of batch) this.markDirty(t.kind, t.group, t.user);
          return this.resync("silent", "redis_restart");
        }
        // Reaped: the re-sync announces the node's whole share (these pairs' state included).
        if (out[0] === -2) return this.resync("announce", "lease_lost");
        for (const [i, t] of batch.entries()) if (out[2 * i] === 1) this.emit({ kind: t.kind, group: t.group, user: t.user, count: out[2 * i + 1]! });
      },
      (err: Error) => {
        this.hooks.onError?.(err);
        for (const t of batch) this.markDirty(t.kind, t.group, t.user);
      },
    );
  }

  private markDirty(kind: PresenceChange["kind"], group: string, user: string): void {
    if (this.stopped) return;
    this.dirty.set(pairKey(group, user), kind);
    this.wanted ??= "silent"; // Redis is unreachable or lost its data: a re-sync follows (the "ready" event, the next renewal, or the caller)
  }

  private emit(change: PresenceChange): void {
    if (!this.stopped) this.onChange(change);
  }

  private renew(): void {
    if (this.stopped) return;
    if (this.wanted) return void this.resync(this.wanted, "reconnect");
    this.scripts.renew(NODES_KEY, this.id, this.opts.ttlMs).then(
      (r) => {
        if (r === 1) this.hooks.onLeaseRenewed?.();
        else if (r === 0) this.resync("silent", "redis_restart");
        else this.resync("announce", "lease_lost");
      },
      (err: Error) => this.hooks.onError?.(err),
    );
  }

  /** Re-registers the node's whole share; `announce` when the cluster saw it leave (reaped). */
  private resync(mode: "silent" | "announce", reason: "redis_restart" | "lease_lost" | "reconnect"): void {
    if (this.stopped) return;
    if (this.wanted !== "announce") this.wanted = mode;
    this.hooks.onResync?.(reason);
    if (this.syncing) return;
    this.syncing = (async () => {
      while (this.wanted && !this.stopped) {
        const announce = this.wanted === "announce";
        this.wanted = null;
        try {
          await this.sync(announce);
        } catch (err) {
          this.wanted ??= announce ? "announce" : "silent";
          this.hooks.onError?.(err as Error);
          return;
        }
      }
      if (this.dirty.size > 0) this.announceDirtyLater();
    })().finally(() => (this.syncing = null));
  }

  private async sync(announce: boolean): Promise<void> {
    // Queued transitions go first, in order (the share sent below includes their outcome anyway).
    this.sendTransitions();
    const args: (string | number)[] = [];
    for (const [key, since] of this.local.entries()) args.push(key, since);
    const out = (await this.scripts.sync(NODES_KEY, this.id, this.opts.ttlMs, announce ? 1 : 0, ...args)) as (string | number)[];
    for (let i = 0; i + 3 < out.length; i += 4) {
      this.emit({ kind: out[i] as "join" | "leave", group: String(out[i + 1]), user: String(out[i + 2]), count: Number(out[i + 3]) });
    }
  }

  /**
   * After a rebuild, the other live nodes re-register within one renewal; then each transition
   * that failed while Redis was away is announced if it still holds (present for a join, absent
   * for a leave).
   */
  private announceDirtyLater(): void {
    const t = setTimeout(async () => {
      const pending = [...this.dirty];
      this.dirty.clear();
      for (const [key, kind] of pending) {
        const [group, user] = splitPair(key);
        try {
          const [present, count] = (await this.scripts.check(NODES_KEY, group, user)) as [number, number];
          if ((kind === "join") === (present === 1)) {
            this.hooks.onDirtyAnnounced?.(kind, group, user);
            this.emit({ kind, group, user, count });
          }
        } catch (err) {
          this.dirty.set(key, kind);
          this.hooks.onError?.(err as Error);
        }
      }
    }, this.renewMs);
    t.unref();
  }

  private async reap(): Promise<void> {
    if (this.reaping || this.stopped || this.redis.status !== "ready") return;
    this.reaping = true;
    try {
      for (let calls = 0; calls < REAP_CALLS; calls++) {
        const out = (await this.scripts.reap(NODES_KEY, REAP_BATCH)) as (string | number)[];
        if (out.length === 0) return;
        for (let i = 2; i + 2 < out.length; i += 3) {
          this.emit({ kind: "leave", group: String(out[i]), user: String(out[i + 1]), count: Number(out[i + 2]) });
        }
        if (out[1] === 1) this.hooks.onLeaseExpired?.(String(out[0]), (out.length - 2) / 3);
      }
    } catch (err) {
      this.hooks.onError?.(err as Error);
    } finally {
      this.reaping = false;
    }
  }
}
