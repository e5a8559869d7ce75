// The chat's seven operations as plain async functions over a store and a bus. Nothing here
// knows about sockets or uWebSockets.js: the gateway hands in a session and a validated frame
// and sends back what it is given.
//
// Stored operations commit first, then publish, then acknowledge: an acknowledged event is
// durable, and an event other clients see is durable too. A retried write (same request_id)
// publishes its original event again, in its current state; the sequencers drop the repeat.
import type { EventBus } from "../bus/bus.ts";
import { GroupMemberships } from "../bus/memberships.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { ChatError, type ClientFrame, type ConversationView, type GroupEvent, type MessageView } from "../protocol/index.ts";
import type { ChatStore, LoggedEvent, NewAttachment, StoredMessage } from "../store/store.ts";
import { serialize, type PresenceAnswer } from "./events.ts";
import { SENT, typingEvent } from "./typing-fast.ts";
import type { Presence, PresenceChange } from "../presence/presence.ts";
import { PRESENCE_MAX_USERS, type PresenceChangeEvent } from "../protocol/index.ts";
import { PresenceBatch } from "./presence-batch.ts";
import { encodeBundle, isBundle, isPresenceFrame, splitBundle } from "./bundle.ts";
import { Sequencer, type Deliver, type Payload } from "./sequencer.ts";
import { RecentEvents } from "./recent-events.ts";
import { StoreGuard, type StoreGuardOptions } from "./store-guard.ts";
import { decodeFile } from "./files.ts";
import { actingUser, type Session } from "./identity.ts";
import { toMessageView } from "./message-view.ts";

export interface Limits {
  maxBodyChars: number;
  maxFileBytes: number;
}

/** What the sender is told on success: the ack's fields, or a history answer. */
export type Outcome =
  | { kind: "ack"; message_id?: string; seq?: number; seen_at?: string; read_seq?: number; unread?: number; last_seq?: number }
  | { kind: "history"; messages: MessageView[]; has_more: boolean }
  | { kind: "groups"; groups: ConversationView[]; has_more: boolean; next?: string }
  | { kind: "presence"; answer: PresenceAnswer };

export interface ServiceDeps {
  store: ChatStore;
  bus: EventBus;
  limits: Limits;
  metrics: Metrics;
  /** Hands a group's events, in seq order, to the local sockets. */
  deliver: Deliver;
  /** Hands a join/leave frame of the group to the sockets that asked for them (and to resuming ones that did). */
  deliverPresence: (group: string, payload: Payload) => void;
  delivery: { gapWaitMs: number; retryWindowMs: number };
  storeGuard: StoreGuardOptions;
  onStoreHealth?: (up: boolean, err?: unknown) => void;
  /** Told when a publish fails after the event was committed (the event is not lost: it is stored). */
  onPublishError?: (err: Error, group: string) => void;
  onDeliveryError?: (err: unknown, group: string) => void;
  presence: Presence;
  /** Above this many present users a group gets no join/leave events (PRESENCE_MAX_BROADCAST). */
  presenceMaxBroadcast: number;
  /**
   * Join/leave frames are held this long at most and published together (PRESENCE_BATCH_MS; 0 =
   * at once); in a group that published within the last PRESENCE_BUSY_BATCH_MS, until that long
   * after its last publish (presence-batch.ts). Both capped here at a quarter of the presence
   * grace: a leave decided on another node comes at least a grace after the join it follows, so
   * it can never overtake a join still held here; and the leaves of a dead node's users, promised
   * within PRESENCE_TTL_S + the grace, lose at most a quarter of the grace's slack to the hold
   * (reaping is checked every half grace).
   */
  presenceBatchMs: number;
  presenceBusyBatchMs: number;
  presenceGraceMs: number;
  /**
   * Whether a tick's frames of a group may go as one bundle (bundle.ts): every node that may hear
   * the group reads bundles. Asked at every tick; false: one publish per frame.
   */
  presenceBundles: () => boolean;
  /** Told of a bus payload that looks like a bundle but cannot be read (dropped whole). */
  onBadBundle?: (group: string) => void;
  /** Told after a stored event (one with a seq) committed: the webhook dispatcher looks at its outbox now. */
  onStored?: (group: string) => void;
  /** The recent events kept in memory for short resumes (RESUME_MEMORY_GROUP_BYTES, RESUME_MEMORY_BYTES); absent: none. */
  resumeMemory?: { groupBytes: number; totalBytes: number };
}

/** Events per replay read: with bodies at their longest, a page is a few MB at most. */
const REPLAY_PAGE = 100;

/** A logged event in the shape a live client would have received it, message in its current state. */
function liveShape(group: string, e: LoggedEvent): GroupEvent {
  if (e.operation === "delete") return deleteEvent(group, e.seq, e.userId, e.message);
  return { operation: e.operation, seq: e.seq, group, message: toMessageView(e.message) };
}

/** A delete by `user`; the deleted message's seq and author let clients keep unread counts exact. */
function deleteEvent(group: string, seq: number, user: string, m: StoredMessage): GroupEvent {
  return { operation: "delete", seq, group, message_id: m.id, user, message_seq: m.seq, author: m.userId };
}

export class ChatService {
  readonly memberships: GroupMemberships;
  private readonly sequencer: Sequencer;
  /** Per followed group: resolves once the node hears its events and knows where its seq stands. */
  private readonly following = new Map<string, Promise<void>>();
  private readonly guard: StoreGuard;
  private readonly presenceBatch: PresenceBatch<PresenceChangeEvent>;
  /** What the node delivered lately, per group, for resumes that need no database read. */
  readonly recentEvents: RecentEvents;

  /** When a store call last succeeded (performance.now() ms): the database answered then (see StoreGuard). */
  get storeAnsweredAt(): number {
    return this.guard.answeredAt;
  }

  constructor(private readonly deps: ServiceDeps) {
    this.recentEvents = new RecentEvents(deps.resumeMemory?.groupBytes ?? 0, deps.resumeMemory?.totalBytes ?? 0);
    const holdCap = Math.floor(deps.presenceGraceMs / 4);
    this.presenceBatch = new PresenceBatch(
      Math.min(deps.presenceBatchMs, holdCap),
      (group, frames) => {
        deps.metrics.presenceBatchFrames.observe(frames.length);
        this.publishPresence(group, frames);
      },
      Math.min(deps.presenceBusyBatchMs, holdCap),
    );
    this.guard = new StoreGuard(() => deps.store.ping(), deps.storeGuard, deps.onStoreHealth);
    this.memberships = new GroupMemberships(deps.bus);
    // Kept before the sockets get it: a replay that reads the node's position reads these too.
    const deliver: Deliver = (group, payload, seq) => {
      if (seq !== null) this.recentEvents.push(group, seq, payload);
      else if (isBundle(payload)) return this.deliverBundle(group, payload);
      else if (isPresenceFrame(payload)) return deps.deliverPresence(group, payload); // one by one: a fleet not reading bundles yet
      deps.deliver(group, payload, seq);
    };
    this.sequencer = new Sequencer(deliver, (g, after, until) => this.eventsAfter(g, after, until), {
      gapWaitMs: deps.delivery.gapWaitMs,
      maxHeld: 10_000,
      retryMs: 500,
    }, deps.onDeliveryError);
  }

  /** A socket joins a group: resolves once this node hears the group's events in order. */
  join(group: string): Promise<void> {
    const first = !this.memberships.has(group);
    const subscribed = this.memberships.join(group);
    if (first) {
      this.recentEvents.drop(group);
      const token = this.sequencer.prepare(group);
      // The baseline is read after the subscription is in place: anything newer arrives on the bus.
      this.following.set(group, subscribed.then(() => this.deps.store.lastSeq(group)).then((seq) => this.sequencer.start(group, token, seq)));
    }
    return this.following.get(group)!;
  }

  /** The node's one copy of a joined group's name (subscriptions keep it rather than their frame's). */
  groupName(group: string): string | undefined {
    return this.memberships.name(group);
  }

  leave(group: string): void {
    this.memberships.leave(group);
    if (!this.memberships.has(group)) {
      this.sequencer.stop(group);
      this.recentEvents.drop(group);
      this.following.delete(group);
    }
  }

  /** A payload from the bus. */
  receive(group: string, payload: Payload): void {
    this.sequencer.accept(group, payload);
  }

  /** After the bus reconnected: deliver whatever was stored while this node could not hear it. */
  async catchUp(): Promise<void> {
    await Promise.all(this.sequencer.groupNames().map((g) => this.sequencer.catchUp(g)));
  }

  /** The seq of the group's newest stored event. */
  lastSeq(group: string): Promise<number> {
    return this.deps.store.lastSeq(group);
  }

  /** How far this node has handed the group's events to its sockets (0 before any). */
  delivered(group: string): number {
    return this.sequencer.delivered(group) ?? 0;
  }

  /** How far this node has handed the group's events to its sockets; null while it does not know yet. */
  deliveredExactly(group: string): number | null {
    return this.sequencer.delivered(group);
  }

  /** One page of stored events with after < seq <= until, serialised in their live shapes with current message state. */
  async page(group: string, after: number, until: number): Promise<{ seq: number; payload: string }[]> {
    const events = await this.eventsAfter(group, after, until, REPLAY_PAGE);
    // Kept for the group's next resumes when they adjoin what the node keeps (the usual wave of
    // resumes after a move all need the same few events).
    const delivered = this.sequencer.delivered(group);
    if (delivered !== null) this.recentEvents.prepend(group, events, delivered + 1);
    return events;
  }

  /** The group's event `seq` as this node delivered it, while its recent events hold it (and it shows its message's current state). */
  recent(group: string, seq: number): Payload | undefined {
    return this.recentEvents.get(group, seq);
  }

  private async eventsAfter(group: string, after: number, until?: number, limit = 10_000) {
    const events = await this.deps.store.eventsSince({ group, after, until, limit });
    return events.map((e) => ({ seq: e.seq, payload: serialize(liveShape(group, e)) }));
  }

  /** With a request_id, a retry of the same create stores nothing new and answers the original ack. */
  async create(s: Session, f: ClientFrame<"create">, requestId?: string): Promise<Outcome> {
    return this.storeMessage(s, f, null, requestId);
  }

  async reply(s: Session, f: ClientFrame<"reply">, requestId?: string): Promise<Outcome> {
    return this.storeMessage(s, f, f.message_id, requestId);
  }

  /** With a request_id, a retry of the same update applies nothing new and answers the original ack. */
  async update(s: Session, f: ClientFrame<"update">, requestId?: string): Promise<Outcome> {
    const user = actingUser(s, f.user);
    this.checkBody(f.body);
    const attachment = f.file === undefined ? undefined : f.file === null ? null : this.file(f.file);
    const w = await this.timed("update", () =>
      this.deps.store.updateMessage({ group: s.group, user, messageId: f.message_id, body: f.body, attachment, retryKey: this.retryKey(requestId) }),
    );
    this.publish(s.group, { operation: "update", seq: w.seq, group: s.group, message: toMessageView(w.message) });
    return { kind: "ack", message_id: w.message.id, seq: w.seq };
  }

  /** With a request_id, a retry of the same delete answers the original ack (not `not_found`). */
  async delete(s: Session, f: ClientFrame<"delete">, requestId?: string): Promise<Outcome> {
    const user = actingUser(s, f.user);
    const w = await this.timed("delete", () => this.deps.store.deleteMessage({ group: s.group, user, messageId: f.message_id, retryKey: this.retryKey(requestId) }));
    this.publish(s.group, deleteEvent(s.group, w.seq, user, w.message));
    return { kind: "ack", message_id: w.message.id, seq: w.seq };
  }

  private retryKey(requestId: string | undefined) {
    return requestId === undefined ? undefined : { requestId, windowMs: this.deps.delivery.retryWindowMs };
  }

  /** Moderation (server API): deletes any author's message; the delete event names `by`. */
  async moderate(input: { group: string; by: string; messageId: string }): Promise<Outcome> {
    const w = await this.timed("delete", () => this.deps.store.deleteMessage({ group: input.group, user: input.by, messageId: input.messageId, anyAuthor: true }));
    this.publish(input.group, deleteEvent(input.group, w.seq, input.by, w.message));
    return { kind: "ack", message_id: w.message.id, seq: w.seq };
  }

  async seen(s: Session, f: ClientFrame<"seen">): Promise<Outcome> {
    const user = actingUser(s, f.user);
    const r = await this.timed("seen", () => this.deps.store.markSeen({ group: s.group, user, messageId: f.message_id }));
    const seenAt = r.seenAt.toISOString();
    if (r.first) this.publish(s.group, { operation: "seen", group: s.group, message_id: f.message_id, user, seen_at: seenAt });
    return { kind: "ack", message_id: f.message_id, seen_at: seenAt };
  }

  async typing(s: Session, f: ClientFrame<"typing">): Promise<Outcome> {
    const user = actingUser(s, f.user);
    // Ephemeral: never stored, acknowledged once handed to the bus. A bus that is down would
    // queue it (and hold up this socket's later frames) until it is stale: refuse it instead.
    const published = this.typingNow(s.group, user, f.typing_status);
    if (published === null) throw new ChatError("unavailable", "event bus unavailable, typing not sent");
    if (published !== SENT) await published;
    return { kind: "ack" };
  }

  /** A page of history: always a page (never an ack), so the HTTP routes need no narrowing. */
  async history(s: Session, f: ClientFrame<"history">): Promise<Extract<Outcome, { kind: "history" }>> {
    const page = await this.timed("history", () => this.deps.store.history({ group: s.group, before: f.before, limit: f.limit }));
    return { kind: "history", messages: page.messages.map(toMessageView), has_more: page.hasMore };
  }

  async presence(s: Session): Promise<Outcome> {
    return { kind: "presence", answer: await this.presenceOf(s.group) };
  }

  /** Who is online in a group: `count` exact, the longest present first (at most 100). The server API calls this too. */
  async presenceOf(group: string): Promise<PresenceAnswer> {
    let snap;
    try {
      snap = await this.deps.presence.snapshot(group, PRESENCE_MAX_USERS);
    } catch {
      throw new ChatError("unavailable", "presence is unavailable, try again");
    }
    return { group, count: snap.count, users: snap.users.map((u) => ({ user: u.user, since: new Date(u.since).toISOString() })) };
  }

  /** A socket of `user` is now subscribed to `group` on this node (either endpoint). */
  presenceOpen(group: string, user: string): void {
    this.deps.presence.open(group, user);
  }

  /** That subscription ended (socket closed or unsubscribed). */
  presenceClose(group: string, user: string): void {
    this.deps.presence.close(group, user);
  }

  /** A transition this node decided: broadcast to the group unless it has too many present users. */
  presenceChanged(c: PresenceChange): void {
    const max = this.deps.presenceMaxBroadcast;
    const broadcast = c.kind === "join" ? c.count <= max : c.count < max;
    this.deps.metrics.presenceEvents.inc({ event: c.kind, broadcast: broadcast ? "yes" : "no" });
    if (broadcast) this.presenceBatch.add(c.group, { operation: c.kind, group: c.group, user: c.user });
  }

  /** The node stops: join/leave frames still held for their tick are published now. */
  flushPresence(): void {
    this.presenceBatch.close();
  }

  /** An attachment's metadata and group, or null (the caller checks who may read its group). */
  attachmentInfo(id: string) {
    return this.guard.run(() => this.deps.store.attachmentInfo(id));
  }

  /** One chunk of an attachment's bytes (see ChatStore.readAttachment). */
  readAttachment(id: string, offset: number, length: number) {
    return this.guard.run(() => this.deps.store.readAttachment(id, offset, length));
  }

  private async storeMessage(s: Session, f: ClientFrame<"create">, replyTo: string | null, requestId: string | undefined): Promise<Outcome> {
    const user = actingUser(s, f.user);
    this.checkBody(f.body);
    if (f.type === "text" && f.body === "") throw new ChatError("bad_request", "a text message needs a non-empty body");
    if (f.type !== "text" && !f.file) throw new ChatError("bad_request", `a ${f.type} message needs a file`);
    const attachment: NewAttachment | null = f.file ? this.file(f.file) : null;
    const operation = replyTo === null ? "create" : "reply";
    const w = await this.timed(operation, () =>
      this.deps.store.createMessage({
        group: s.group,
        user,
        type: f.type,
        body: f.body,
        attachment,
        replyTo,
        retryKey: this.retryKey(requestId),
      }),
    );
    // A retry's event is published again: its first attempt may have committed without this node
    // learning it (and so without publishing). Receivers drop a seq they delivered already.
    this.publish(s.group, { operation, seq: w.seq, group: s.group, message: toMessageView(w.message) });
    return { kind: "ack", message_id: w.message.id, seq: w.seq };
  }

  private checkBody(body: string): void {
    if (body.length > this.deps.limits.maxBodyChars) {
      throw new ChatError("too_large", `body is longer than ${this.deps.limits.maxBodyChars} characters`);
    }
  }

  private file(input: NonNullable<ClientFrame<"create">["file"]>): NewAttachment {
    return decodeFile(input, this.deps.limits.maxFileBytes);
  }

  private async timed<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const end = this.deps.metrics.storeDuration.startTimer({ operation });
    try {
      return await this.guard.run(run);
    } finally {
      end();
    }
  }

  /**
   * A typing event to the group, its frame already checked and its acting user known (typing()
   * and the dispatcher's fast path): written by template. Null when the bus is down, which
   * typing() answers with `unavailable`.
   */
  typingNow(group: string, user: string, typingStatus: string): Promise<void> | typeof SENT | null {
    const bus = this.deps.bus;
    if (!bus.isUp()) return null;
    const payload = typingEvent(group, user, typingStatus);
    if (bus.publishNow === undefined) return this.publishPayload(group, "typing", payload);
    // The in-process bus delivers inside the call: no promise, counted and timed the same.
    this.deps.metrics.eventsPublished.add("typing");
    const started = performance.now();
    try {
      bus.publishNow(group, payload);
    } catch (err) {
      return Promise.reject(err as Error);
    } finally {
      this.deps.metrics.busPublishDuration.observe((performance.now() - started) / 1000);
    }
    return SENT;
  }

  private publishNow(group: string, event: GroupEvent): Promise<void> {
    return this.publishPayload(group, event.operation, serialize(event));
  }

  private publishPayload(group: string, operation: string, payload: string): Promise<void> {
    this.deps.metrics.eventsPublished.add(operation);
    const started = performance.now();
    const took = () => this.deps.metrics.busPublishDuration.observe((performance.now() - started) / 1000);
    return this.deps.bus.publish(group, payload).then(took, (err: unknown) => {
      took();
      throw err;
    });
  }

  /** Sends an event to every socket of the group on every node (read markers use it). */
  broadcast(group: string, event: GroupEvent): void {
    this.publish(group, event);
  }

  /**
   * A tick's join/leave frames of one group: one bus publish (a bundle) when the fleet reads
   * bundles, else one per frame. Ephemeral and unacknowledged, so no publish timing: the cost per
   * frame is its serialisation.
   */
  private publishPresence(group: string, events: PresenceChangeEvent[]): void {
    let joins = 0;
    const frames = events.map((e) => {
      if (e.operation === "join") joins++;
      return serialize(e);
    });
    const published = this.deps.metrics.eventsPublished;
    if (joins > 0) published.add("join", joins);
    if (joins < frames.length) published.add("leave", frames.length - joins);
    const failed = (err: Error) => this.deps.onPublishError?.(err, group);
    if (frames.length > 1 && this.deps.presenceBundles()) this.deps.bus.publish(group, encodeBundle(frames)).catch(failed);
    else for (const f of frames) this.deps.bus.publish(group, f).catch(failed);
  }

  /** A bundle from the bus: its frames, each as it was serialised, to the sockets in order. */
  private deliverBundle(group: string, payload: Payload): void {
    const frames = splitBundle(payload);
    if (frames === null) return this.deps.onBadBundle?.(group);
    for (const f of frames) this.deps.deliverPresence(group, f);
  }

  /** After a commit: the event is durable, so the ack does not wait for the bus. */
  private publish(group: string, event: GroupEvent): void {
    if ("seq" in event) this.deps.onStored?.(group);
    this.publishNow(group, event).catch((err: Error) => this.deps.onPublishError?.(err, group));
  }
}
