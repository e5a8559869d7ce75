// The node's subscriptions: who is resuming which group, and the budgets they share. The node
// delivers every group event here after its live fan-out, in seq order; subscriptions still
// replaying or waiting to go live hold it (see subscription.ts). Listeners hear every
// subscription open and close (presence hooks in here), exactly once each.
import type { Metrics, ResumeSource } from "../metrics/metrics.ts";
import type { LimitName } from "../protocol/index.ts";
import { withDeadline } from "../deadline.ts";
import { Slots, type ByteBudget } from "./budget.ts";
import type { ReplaySource } from "./replay.ts";
import type { Payload } from "./sequencer.ts";
import { Subscription, type SubscriptionContext, type SubscriptionOwner } from "./subscription.ts";

/** The service as subscriptions see it: group memberships (the bus channel) and replays. */
export interface SubscriptionService extends ReplaySource {
  /** Takes a membership of the group: resolves once the node hears its events in order. */
  join(group: string): Promise<void>;
  /** Gives one membership back. */
  leave(group: string): void;
  /** The node's own string for a group it has a membership of (sockets share it), or undefined. */
  groupName?(group: string): string | undefined;
}

export interface SubscriptionsOptions {
  /** Bytes of live events one subscription may hold while it resumes (MAX_HELD_BYTES). */
  maxHeldBytes: number;
  /** A replay pauses while its socket has more than this queued (MAX_REPLAY_BUFFER_BYTES). */
  replayBufferBytes: number;
  /** Replay reads running at once on this node (MAX_CONCURRENT_REPLAYS). */
  maxConcurrentReplays: number;
  /** How long a join may wait for the node to subscribe to the group's channel. */
  joinTimeoutMs: number;
}

export interface SubscriptionsLog {
  warn(obj: object, msg: string): void;
}

type Listener = (sub: Subscription) => void;

/**
 * The node's side of every subscription, and the one SubscriptionContext they all share (a
 * subscription reaches it through its Subscriber: nothing of the node is copied into it).
 */
export class Subscriptions implements SubscriptionContext {
  private readonly resumingByGroup = new Map<string, Set<Subscription>>();
  private readonly slots: Slots;
  private readonly listeners = { open: new Set<Listener>(), close: new Set<Listener>() };
  private resumingCount = 0;
  readonly maxHeldBytes: number;
  readonly replayBufferBytes: number;

  constructor(
    private readonly service: SubscriptionService,
    private readonly opts: SubscriptionsOptions,
    /** The node-wide byte budget, shared with the gateway's pending input. */
    private readonly budget: ByteBudget,
    private readonly metrics: Metrics,
    private readonly log: SubscriptionsLog,
  ) {
    this.maxHeldBytes = opts.maxHeldBytes;
    this.replayBufferBytes = opts.replayBufferBytes;
    this.slots = new Slots(opts.maxConcurrentReplays, (running, waiting) => {
      metrics.replays.set({ state: "running" }, running);
      metrics.replays.set({ state: "waiting" }, waiting);
    });
  }

  /** Takes a membership of `group` for a subscription about to open; rejects (membership given back) when the bus does not answer in time. */
  async join(group: string): Promise<void> {
    try {
      await withDeadline(this.service.join(group), this.opts.joinTimeoutMs, () => new Error("subscribe timed out"));
    } catch (err) {
      this.service.leave(group);
      throw err;
    }
  }

  /** Gives back a membership taken by `join` whose subscription never opened. */
  leave(group: string): void {
    this.service.leave(group);
  }

  /** Hears every subscription that opens (once it has started: live, or replaying) or closes; returns the unsubscribe. */
  on(event: "open" | "close", listener: Listener): () => void {
    this.listeners[event].add(listener);
    return () => void this.listeners[event].delete(listener);
  }

  /** Subscriptions replaying or waiting to go live. */
  get resuming(): number {
    return this.resumingCount;
  }

  /** Every group event, in seq order, after the live fan-out: resuming subscriptions hold it. */
  deliver(group: string, payload: Payload, seq: number | null): void {
    const subs = this.resumingByGroup.get(group);
    if (subs) for (const sub of [...subs]) sub.hold(payload, seq);
  }

  /** A join/leave frame of the group, after its fan-out: resuming subscriptions that asked for them hold it. */
  deliverPresence(group: string, payload: Payload): void {
    const subs = this.resumingByGroup.get(group);
    if (subs) for (const sub of [...subs]) sub.holdPresence(payload);
  }

  /**
   * Used by Subscriber: a new subscription of `owner` (which holds one membership of the group).
   * Its group is the node's own copy of the name when the node has one, so that the sockets of a
   * group share one string instead of each keeping the one its frame was parsed into.
   */
  open(group: string, owner: SubscriptionOwner, presence = false): Subscription {
    return new Subscription(this.service.groupName?.(group) ?? group, owner, presence);
  }

  /** Used by Subscriber once the subscription has started (a live one is in the fan-out already, so it hears what its own opening causes, such as its user's `join`). */
  opened(sub: Subscription): void {
    if (!sub.announce()) return;
    for (const l of this.listeners.open) l(sub);
  }

  // SubscriptionContext: what every subscription shares.

  get source(): SubscriptionService {
    return this.service;
  }

  takeHeld(bytes: number): boolean {
    return this.budget.take(bytes);
  }

  giveHeld(bytes: number): void {
    if (bytes > 0) this.budget.give(bytes);
  }

  /** One replay read under a slot, timed: how long it queued for the slot, and how long it held it. */
  replaySlot<T>(fn: () => Promise<T>): Promise<T> {
    const queued = performance.now();
    return this.slots.run(async () => {
      const start = performance.now();
      this.metrics.replaySlotWait.observe((start - queued) / 1000);
      try {
        return await fn();
      } finally {
        this.metrics.replayRead.observe((performance.now() - start) / 1000);
      }
    }, () => this.hit("replay_slots"));
  }

  resumed(source: ResumeSource, seconds: number): void {
    this.metrics.resumeDuration.observe({ source }, seconds);
  }

  setResuming(sub: Subscription, on: boolean): void {
    let subs = this.resumingByGroup.get(sub.group);
    if (on) {
      if (!subs) this.resumingByGroup.set(sub.group, (subs = new Set()));
      if (subs.has(sub)) return;
      subs.add(sub);
      this.resumingCount++;
    } else {
      if (!subs?.delete(sub)) return;
      if (subs.size === 0) this.resumingByGroup.delete(sub.group);
      this.resumingCount--;
    }
    this.metrics.resuming.set(this.resumingCount);
  }

  closed(sub: Subscription): void {
    this.service.leave(sub.group);
    if (sub.announced) for (const l of this.listeners.close) l(sub);
  }

  hit(limit: LimitName): void {
    this.metrics.limitHits.inc({ limit });
  }

  replayFailed(err: unknown, sub: Subscription): void {
    this.log.warn({ err, group: sub.group, user: sub.user }, "replay failed");
  }
}
