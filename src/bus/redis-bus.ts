// The Redis bus: one publishing and one subscribing connection per node. Channel naming is
// defined here and nowhere else. ioredis resubscribes by itself after a reconnect and queues
// publishes while disconnected, so a Redis restart delays events rather than dropping them.
import { Redis } from "ioredis";
import { withDeadline } from "../deadline.ts";
import type { BusHandler, EventBus } from "./bus.ts";

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

  constructor(
    url: string,
    onPayload: BusHandler,
    hooks: { onError?: (err: Error) => void; onResubscribed?: () => void } = {},
  ) {
    const options = { lazyConnect: false, maxRetriesPerRequest: null, connectionName: "chatroom" };
    this.pub = new Redis(url, options);
    this.sub = new Redis(url, options);
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

  async publish(group: string, payload: string): Promise<void> {
    await this.pub.publish(channelOf(group), payload);
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
    await Promise.allSettled([this.pub.quit(), this.sub.quit()]);
  }
}
