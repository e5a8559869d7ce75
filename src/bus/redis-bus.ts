// The Redis bus: one publishing and one subscribing connection per node. Channel naming is
// defined here and nowhere else. ioredis resubscribes by itself after a reconnect. Publishes made
// while disconnected wait in a PublishBudget (publish-budget.ts) of `maxQueueBytes`, so a short
// Redis restart delays events rather than dropping them, and a long one cannot grow the node's
// memory: past the budget publishes are dropped and the receivers repair them from the store.
import { Redis } from "ioredis";
import { withDeadline } from "../deadline.ts";
import type { BusHandler, EventBus } from "./bus.ts";
import { PublishBudget } from "./publish-budget.ts";

/** Default byte budget of publishes waiting for a Redis connection (MAX_BUS_QUEUE_BYTES). */
export const DEFAULT_BUS_QUEUE_BYTES = 16 * 1024 * 1024;

export interface RedisBusHooks {
  onError?: (err: Error) => void;
  onResubscribed?: () => void;
  /** A publish was dropped because `maxQueueBytes` were already waiting. */
  onPublishDropped?: (bytes: number) => void;
}

export const CHANNEL_PREFIX = "chat:";
export const channelOf = (group: string) => CHANNEL_PREFIX + group;
/**
 * The Redis Cluster shard channel of a group: `chat:{<group>}`. The braces are a hash tag, so the
 * channel's slot is the group's (group names never contain braces).
 */
export const shardChannelOf = (group: string) => `${CHANNEL_PREFIX}{${group}}`;
export const groupOfShardChannel = (channel: Buffer) => channel.toString("latin1", CHANNEL_PREFIX.length + 1, channel.length - 1);

export class RedisBus implements EventBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly budget: PublishBudget;

  constructor(
    url: string,
    onPayload: BusHandler,
    hooks: RedisBusHooks = {},
    maxQueueBytes = DEFAULT_BUS_QUEUE_BYTES,
  ) {
    const options = { lazyConnect: false, maxRetriesPerRequest: null, connectionName: "chatroom" };
    // The publisher's own offline queue is off: the budget holds what waits, in bytes.
    this.pub = new Redis(url, { ...options, enableOfflineQueue: false });
    this.sub = new Redis(url, options);
    this.budget = new PublishBudget({
      maxBytes: maxQueueBytes,
      ready: () => this.pub.status === "ready",
      send: (group, payload) => this.pub.publish(channelOf(group), payload),
      onDrop: hooks.onPublishDropped,
    });
    this.pub.on("ready", () => this.budget.flush());
    const onError = hooks.onError ?? (() => {});
    this.pub.on("error", onError);
    this.sub.on("error", onError);
    let connectedBefore = false;
    this.sub.on("ready", () => {
      if (!connectedBefore) {
        connectedBefore = true;
        return;
      }
      // ioredis re-sends SUBSCRIBE for every channel on "ready"; a PING on the same connection
      // answers only after those, so once it does the node hears every group again.
      this.sub.ping().then(() => hooks.onResubscribed?.(), onError);
    });
    // Buffers, not strings: the payload goes to the sockets without a UTF-8 decode/encode.
    this.sub.on("messageBuffer", (channel: Buffer, message: Buffer) => {
      onPayload(channel.toString("latin1", CHANNEL_PREFIX.length), message);
    });
  }

  publish(group: string, payload: string): Promise<void> {
    return this.budget.publish(group, payload);
  }

  /** Payload bytes waiting for the connection or not yet acknowledged by Redis. */
  get queuedBytes(): number {
    return this.budget.bytes;
  }

  async subscribe(group: string): Promise<void> {
    await this.sub.subscribe(channelOf(group));
  }

  async unsubscribe(group: string): Promise<void> {
    await this.sub.unsubscribe(channelOf(group));
  }

  isUp(): boolean {
    return this.pub.status === "ready" && this.sub.status === "ready";
  }

  /** Resolves once both connections are ready (or rejects after `ms`). */
  async ready(ms = 10_000): Promise<void> {
    const wait = (r: Redis) =>
      r.status === "ready" ? Promise.resolve() : new Promise<void>((resolve) => r.once("ready", () => resolve()));
    await withDeadline(Promise.all([wait(this.pub), wait(this.sub)]), ms, () => new Error(`Redis not ready after ${ms} ms`));
  }

  async close(): Promise<void> {
    this.budget.close();
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
  }
}
