// One socket following one group: the single owner of that pair's delivery state. It replays the
// stored events after `since` (paced by the socket's send buffer), holds the live events that
// arrive meanwhile (under a byte budget), hands over to the live fan-out with no gap and no repeat
// at the seam, and is closed exactly once. Every asynchronous step (a replay page, a drain, a
// held event, a failure) first asks "am I still open?": a socket that closes mid-replay, or while
// parked waiting for this node to catch up, leaves nothing behind and is never touched again.
//
// The transport is reached only through an Outlet, which the gateway implements over a uWS
// socket; one socket may hold many subscriptions (see subscriber.ts).
import { CLOSE_SLOW_CONSUMER, type LimitName } from "../protocol/index.ts";
import { replay, type ReplaySink } from "./replay.ts";
import type { Payload } from "./sequencer.ts";
import type { ResumeSource } from "../metrics/metrics.ts";

/**
 * What a subscription needs from its socket. `open` turns false before the socket's close is
 * handled, and nothing may be called on a closed outlet (uWS throws on a closed socket);
 * implementations ignore calls made after close anyway.
 */
export interface Outlet {
  /** The socket's id, for logs. */
  readonly id: string;
  readonly open: boolean;
  send(payload: Payload): void;
  /** Bytes queued for the socket that the kernel has not taken yet. */
  buffered(): number;
  /** Runs `fn` with the socket's sends written together. */
  cork(fn: () => void): void;
  /** Joins (or leaves) the group's live fan-out: every event the node delivers afterwards is sent by the transport. */
  live(group: string, join: boolean): void;
  /** Closes the whole socket (a broken budget: 4008; a failed replay: 1013). */
  end(code: number, reason: string): void;
}

/** What the node offers its subscriptions (implemented by Subscriptions in subscriptions.ts). */
export interface SubscriptionContext {
  /** Bytes one subscription may hold while it resumes. */
  readonly maxHeldBytes: number;
  /** A replay pauses while its socket has more than this queued. */
  readonly replayBufferBytes: number;
  /** Node-wide: takes bytes for held events; false when the node's budget is spent. */
  takeHeld(bytes: number): boolean;
  giveHeld(bytes: number): void;
  /** Runs one replay read under the node's replay concurrency budget. */
  replaySlot<T>(fn: () => Promise<T>): Promise<T>;
  readonly source: ReplaySink["source"];
  /** While resuming, the node delivers the group's events to `hold`. */
  resuming(sub: Subscription, on: boolean): void;
  /** The subscription is gone: its group membership is given back, listeners are told. */
  closed(sub: Subscription): void;
  hit(limit: LimitName): void;
  replayFailed(err: unknown, sub: Subscription): void;
  /** A replay sent its `resumed` marker `seconds` after the subscription started. */
  resumed?(source: ResumeSource, seconds: number): void;
}

export type SubscriptionState = "replaying" | "holding" | "live" | "closed";

interface Held {
  payload: Payload;
  seq: number | null;
  bytes: number;
}

const byteLength = (p: Payload) => (typeof p === "string" ? Buffer.byteLength(p) : p.byteLength);

export class Subscription {
  private stateNow: SubscriptionState = "replaying";
  private held: Held[] = [];
  private heldBytes = 0;
  /** When the client is ahead of this node: the seq the node must deliver before going live. */
  private liveAt: number | null = null;
  /** The last seq the replay sent (or `since`). */
  private upTo = 0;
  /** Wakes a replay waiting for the send buffer to drain (or for the close). */
  private wake: (() => void) | null = null;

  constructor(
    readonly group: string,
    /** The socket's user, or null when each frame names its own (open dev mode). */
    readonly user: string | null,
    /** The socket it sends through. */
    readonly outlet: Outlet,
    private readonly ctx: SubscriptionContext,
  ) {}

  get state(): SubscriptionState {
    return this.stateNow;
  }

  get isOpen(): boolean {
    return this.stateNow !== "closed" && this.outlet.open;
  }

  /** Starts delivery: live at once (since null), or a replay from `since`, then live. */
  start(since: number | null): void {
    if (since === null) {
      this.stateNow = "live";
      this.outlet.live(this.group, true);
      return;
    }
    this.upTo = since;
    this.ctx.resuming(this, true);
    const startedAt = performance.now();
    let source: ResumeSource = "database";
    const sink: ReplaySink = {
      source: this.ctx.source,
      isOpen: () => this.isOpen,
      send: (payload) => this.isOpen && this.outlet.send(payload),
      writable: () => this.writable(),
      slot: (fn) => this.ctx.replaySlot(fn),
      served: (s) => void (source = s),
    };
    replay(sink, this.group, since).then(
      (upTo) => {
        if (!this.isOpen) return;
        this.ctx.resumed?.(source, (performance.now() - startedAt) / 1000);
        this.upTo = upTo;
        // A client that came from a node further ahead waits until this node has caught up to
        // it; going live earlier would hand it events it already has.
        if (this.ctx.source.delivered(this.group) >= upTo) this.goLive();
        else {
          this.stateNow = "holding";
          this.liveAt = upTo;
        }
      },
      (err) => {
        if (!this.isOpen) return;
        this.ctx.replayFailed(err, this);
        // A client that asked to resume must not silently get a gap: let it reconnect and retry.
        this.outlet.end(1013, "replay unavailable, retry");
      },
    );
  }

  /** An event of the group, in seq order, delivered by the node while this subscription is not live yet. */
  hold(payload: Payload, seq: number | null): void {
    if (!this.isOpen) return;
    const bytes = byteLength(payload);
    if (this.heldBytes + bytes > this.ctx.maxHeldBytes) return this.overflow("held_bytes", "slow consumer: too many events held while resuming");
    if (!this.ctx.takeHeld(bytes)) return this.overflow("node_buffer", "slow consumer: the node's buffers are full");
    this.held.push({ payload, seq, bytes });
    this.heldBytes += bytes;
    if (this.liveAt !== null && seq !== null && seq >= this.liveAt) this.goLive();
  }

  /** The socket's send buffer drained. */
  drained(): void {
    this.wake?.();
  }

  /** Ends the subscription (the socket closed, or the client unsubscribed): exactly once. */
  close(): void {
    if (this.stateNow === "closed") return;
    const wasLive = this.stateNow === "live";
    this.stateNow = "closed";
    this.release();
    this.liveAt = null;
    this.ctx.resuming(this, false);
    if (wasLive && this.outlet.open) this.outlet.live(this.group, false);
    this.wake?.();
    this.ctx.closed(this);
  }

  private goLive(): void {
    const held = this.held;
    this.release();
    this.liveAt = null;
    this.ctx.resuming(this, false);
    this.stateNow = "live";
    // The held events the client lacks and the join happen in one tick: nothing slips in between.
    this.outlet.cork(() => {
      for (const h of held) if (h.seq === null || h.seq > this.upTo) this.outlet.send(h.payload);
      this.outlet.live(this.group, true);
    });
  }

  private release(): void {
    this.ctx.giveHeld(this.heldBytes);
    this.held = [];
    this.heldBytes = 0;
  }

  /** A budget is spent: the socket is cut off (4008); it reconnects with ?since= and misses nothing. */
  private overflow(limit: LimitName, reason: string): void {
    this.ctx.hit(limit);
    this.outlet.end(CLOSE_SLOW_CONSUMER, reason);
    this.close(); // in case the transport reports the close later
  }

  /** Resolves when the socket's queue is below the replay's budget, or the subscription closed. */
  private writable(): Promise<void> {
    if (!this.isOpen || this.outlet.buffered() < this.ctx.replayBufferBytes) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.wake = () => {
        if (this.isOpen && this.outlet.buffered() >= this.ctx.replayBufferBytes) return;
        this.wake = null;
        resolve();
      };
    });
  }
}
