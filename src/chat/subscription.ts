// One socket following one group: the single owner of that pair's delivery state. It replays the
// stored events after `since` (paced by the socket's send buffer), holds the live events that
// arrive meanwhile (under a byte budget), hands over to the live fan-out with no gap and no repeat
// at the seam, and is closed exactly once. Every asynchronous step (a replay page, a drain, a
// held event, a failure) first asks "am I still open?": a socket that closes mid-replay, or while
// parked waiting for this node to catch up, leaves nothing behind and is never touched again.
//
// The transport is reached only through an Outlet, which the gateway implements over a uWS
// socket; one socket may hold many subscriptions (see subscriber.ts).
//
// Memory (issue 12): a `/ws/` socket may follow hundreds of groups, so a subscription is a small
// record (its group, its socket's Subscriber, a state word and, only while it resumes, a Resume)
// whose behaviour is on the prototype and whose node is shared through its owner: nothing is
// allocated per subscription but the record. What resuming needs (held events, the replay's
// position, its wake-up) lives in a Resume made when the replay starts and dropped the moment the
// subscription goes live or closes.
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
  /** Joins (or leaves) a fan-out topic (a group's, or its join/leave events': `presenceTopic`): every event the node delivers to it afterwards is sent by the transport. */
  live(topic: string, join: boolean): void;
  /** Closes the whole socket (a broken budget: 4008; a failed replay: 1013). */
  end(code: number, reason: string): void;
}

/** What the node offers its subscriptions (implemented by Subscriptions in subscriptions.ts): one object for all of them. */
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
  setResuming(sub: Subscription, on: boolean): void;
  /** The subscription is gone (its owner has forgotten it): its group membership is given back, listeners are told. */
  closed(sub: Subscription): void;
  hit(limit: LimitName): void;
  replayFailed(err: unknown, sub: Subscription): void;
  /** A replay sent its `resumed` marker `seconds` after it started, its events from `source`. */
  resumed?(source: ResumeSource, seconds: number): void;
}

/** The socket's side of its subscriptions (implemented by Subscriber in subscriber.ts). */
export interface SubscriptionOwner {
  readonly outlet: Outlet;
  /** The socket's user, or null when each frame names its own (open dev mode). */
  readonly user: string | null;
  readonly node: SubscriptionContext;
  /** The subscription closed: the socket no longer follows its group. */
  forget(sub: Subscription): void;
}

export type SubscriptionState = "replaying" | "holding" | "live" | "closed";

// The state word: the state in the low two bits, and whether the node announced the subscription
// to its open listeners (so that the close listeners run for it, exactly once).
const REPLAYING = 0;
const HOLDING = 1;
const LIVE = 2;
const CLOSED = 3;
const STATE = 3;
const ANNOUNCED = 4;
/** The client asked for the group's join/leave events (`?presence=1`, or `presence: true` in `subscribe`). */
const PRESENCE = 8;

/**
 * The fan-out topic of a group's join/leave events, beside the group's own: only the sockets that
 * asked for them follow it, so a socket that shows no presence costs a join nothing. Group names
 * have no space (src/protocol/names.ts), so it cannot be another group's topic.
 */
export const presenceTopic = (group: string) => `${group} presence`;
const STATES: readonly SubscriptionState[] = ["replaying", "holding", "live", "closed"];

interface Held {
  payload: Payload;
  seq: number | null;
  bytes: number;
}

const byteLength = (p: Payload) => (typeof p === "string" ? Buffer.byteLength(p) : p.byteLength);

/** A subscription's state while it resumes; the replay reads and sends through it. */
class Resume implements ReplaySink {
  held: Held[] = [];
  heldBytes = 0;
  /** When the client is ahead of this node: the seq the node must deliver before going live. */
  liveAt: number | null = null;
  /** Wakes a replay waiting for the send buffer to drain (or for the close). */
  wake: (() => void) | null = null;
  /** Where the replay's events came from (told by the replay), and when it started: for chat_resume_seconds. */
  servedBy: ResumeSource = "database";
  readonly startedAt = performance.now();

  constructor(
    private readonly sub: Subscription,
    /** The last seq the replay sent (or `since`). */
    public upTo: number,
  ) {}

  get source(): ReplaySink["source"] {
    return this.sub.owner.node.source;
  }

  isOpen(): boolean {
    return this.sub.isOpen;
  }

  send(payload: Payload): void {
    if (this.sub.isOpen) this.sub.owner.outlet.send(payload);
  }

  slot<T>(fn: () => Promise<T>): Promise<T> {
    return this.sub.owner.node.replaySlot(fn);
  }

  served(source: ResumeSource): void {
    this.servedBy = source;
  }

  /** Resolves when the socket's queue is below the replay's budget, or the subscription closed. */
  writable(): Promise<void> {
    const { sub } = this;
    const limit = sub.owner.node.replayBufferBytes;
    if (!sub.isOpen || sub.owner.outlet.buffered() < limit) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.wake = () => {
        if (sub.isOpen && sub.owner.outlet.buffered() >= limit) return;
        this.wake = null;
        resolve();
      };
    });
  }
}

export class Subscription {
  private word = REPLAYING;
  private resume: Resume | null = null;

  constructor(
    readonly group: string,
    /** The socket's Subscriber: its outlet, its user, and the node. */
    readonly owner: SubscriptionOwner,
    /** Whether the client asked for the group's join/leave events. */
    presence = false,
  ) {
    if (presence) this.word |= PRESENCE;
  }

  get state(): SubscriptionState {
    return STATES[this.word & STATE]!;
  }

  /** The socket it sends through. */
  get outlet(): Outlet {
    return this.owner.outlet;
  }

  /** The socket's user, or null when each frame names its own (open dev mode). */
  get user(): string | null {
    return this.owner.user;
  }

  get isOpen(): boolean {
    return (this.word & STATE) !== CLOSED && this.owner.outlet.open;
  }

  /** Whether the node's open listeners heard of it (then, and only then, its close is announced). */
  get announced(): boolean {
    return (this.word & ANNOUNCED) !== 0;
  }

  /** Used by Subscriptions as it runs the open listeners; false (nothing to announce) once closed. */
  announce(): boolean {
    if ((this.word & STATE) === CLOSED) return false;
    this.word |= ANNOUNCED;
    return true;
  }

  /** Starts delivery: live at once (since null), or a replay from `since`, then live. */
  start(since: number | null): void {
    if (since === null) {
      this.set(LIVE);
      this.join(true);
      return;
    }
    const resume = (this.resume = new Resume(this, since));
    this.owner.node.setResuming(this, true);
    replay(resume, this.group, since).then(
      (upTo) => this.replayed(resume, upTo),
      (err: unknown) => this.replayFailed(resume, err),
    );
  }

  /** An event of the group, in seq order, delivered by the node while this subscription is not live yet. */
  hold(payload: Payload, seq: number | null): void {
    const r = this.resume;
    if (r === null || !this.isOpen) return;
    const { node } = this.owner;
    const bytes = byteLength(payload);
    if (r.heldBytes + bytes > node.maxHeldBytes) return this.overflow("held_bytes", "slow consumer: too many events held while resuming");
    if (!node.takeHeld(bytes)) return this.overflow("node_buffer", "slow consumer: the node's buffers are full");
    r.held.push({ payload, seq, bytes });
    r.heldBytes += bytes;
    if (r.liveAt !== null && seq !== null && seq >= r.liveAt) this.goLive();
  }

  /** A join/leave frame of the group while this subscription is not live yet: held only if it asked for them. */
  holdPresence(payload: Payload): void {
    if (this.word & PRESENCE) this.hold(payload, null);
  }

  /** The socket's send buffer drained. */
  drained(): void {
    this.resume?.wake?.();
  }

  /** Ends the subscription (the socket closed, or the client unsubscribed): exactly once. */
  close(): void {
    if ((this.word & STATE) === CLOSED) return;
    const wasLive = (this.word & STATE) === LIVE;
    this.set(CLOSED);
    const r = this.dropResume();
    if (wasLive && this.owner.outlet.open) this.join(false);
    r?.wake?.();
    this.owner.forget(this);
    this.owner.node.closed(this);
  }

  /** Joins (or leaves) the group's live fan-out, and its join/leave events' if it asked for them. */
  private join(on: boolean): void {
    const { outlet } = this.owner;
    outlet.live(this.group, on);
    if (this.word & PRESENCE) outlet.live(presenceTopic(this.group), on);
  }

  private set(state: number): void {
    this.word = (this.word & ~STATE) | state;
  }

  /** The replay sent everything up to `upTo` (and `resumed`). */
  private replayed(r: Resume, upTo: number): void {
    if (!this.isOpen || this.resume !== r) return;
    this.owner.node.resumed?.(r.servedBy, (performance.now() - r.startedAt) / 1000);
    r.upTo = upTo;
    // A client that came from a node further ahead waits until this node has caught up to it;
    // going live earlier would hand it events it already has.
    if (this.owner.node.source.delivered(this.group) >= upTo) this.goLive();
    else {
      this.set(HOLDING);
      r.liveAt = upTo;
    }
  }

  private replayFailed(r: Resume, err: unknown): void {
    if (!this.isOpen || this.resume !== r) return;
    this.owner.node.replayFailed(err, this);
    // A client that asked to resume must not silently get a gap: let it reconnect and retry.
    this.owner.outlet.end(1013, "replay unavailable, retry");
  }

  private goLive(): void {
    const r = this.dropResume()!;
    this.set(LIVE);
    const { outlet } = this.owner;
    // The held events the client lacks and the join happen in one tick: nothing slips in between.
    outlet.cork(() => {
      for (const h of r.held) if (h.seq === null || h.seq > r.upTo) outlet.send(h.payload);
      this.join(true);
    });
  }

  /** Ends the resume: its held bytes go back to the node, which stops handing it events. */
  private dropResume(): Resume | null {
    const r = this.resume;
    if (r === null) return null;
    this.resume = null;
    this.owner.node.giveHeld(r.heldBytes);
    r.heldBytes = 0;
    r.liveAt = null;
    this.owner.node.setResuming(this, false);
    return r;
  }

  /** A budget is spent: the socket is cut off (4008); it reconnects with ?since= and misses nothing. */
  private overflow(limit: LimitName, reason: string): void {
    this.owner.node.hit(limit);
    this.owner.outlet.end(CLOSE_SLOW_CONSUMER, reason);
    this.close(); // in case the transport reports the close later
  }
}
