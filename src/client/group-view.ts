// One group as seen through a ChatConnection: its messages (Timeline), members' read markers
// (ReadMarkers), who types (Typers), who is online (PresenceList) and its own last seq. What it
// promises the application:
// - stored events (create, reply, update, delete) apply once and in seq order and reach the
//   listeners so: a repeat is dropped, a gap makes the connection have it replayed from this
//   view's seq (see ChatConnection.resync);
// - each time the group goes live: without a seq to resume from, the newest `historyLimit`
//   messages are loaded; the members' markers are loaded ("seen by" survives a reload); with
//   `presence`, who is online is asked again (with `focusOnly`, these two only while focused);
//   and the group's waiting operations are sent;
// - `unread` is the server's count, exact on every device of the user (see unread.ts);
// - every operation is a promise of its answer, kept in the connection's one outbox (see
//   outbox.ts: request_id for life, retries, saved across reloads with `outboxStorage`).
import * as v from "valibot";
import {
  ClientFrames,
  MESSAGE_TYPES,
  type AckEvent,
  type ConversationView,
  type DeleteEvent,
  type FileInput,
  type GroupEvent,
  type HistoryEvent,
  type MemberView,
  type MessageEvent,
  type MessageView,
  type Operation,
  type PresenceEvent,
  type ReadEvent,
  type SeenEvent,
  type ServerEvent,
  type TypingEvent,
} from "../protocol/index.ts";
import { Emitter } from "./emitter.ts";
import { ChatRequestError } from "./errors.ts";
import type { Answer, Pending, RestoredOperation } from "./outbox.ts";
import { PresenceList, type PresenceState } from "./presence.ts";
import { ReadMarkers } from "./read-markers.ts";
import { Timeline } from "./timeline.ts";
import { Typers, TypingSender, type TypingOptions } from "./typing.ts";
import { UnreadCounter, type UnreadSnapshot } from "./unread.ts";

/**
 * - `subscribing`: waiting for the socket, or for the answer to `subscribe`;
 * - `syncing`: receiving the replay of what was missed (from its last seq);
 * - `live`: caught up; its operations are sent as they are made;
 * - `offline`: the connection is gone (it comes back by itself);
 * - `closed`: unfollowed, or the connection was closed.
 */
export type GroupViewState = "subscribing" | "syncing" | "live" | "offline" | "closed";

export type RequestInput<Op extends Operation> = v.InferInput<(typeof ClientFrames)[Op]>;
export type RequestAnswer<Op extends Operation> = Op extends "history" ? HistoryEvent : Op extends "presence" ? PresenceEvent : AckEvent;
export type MessageType = (typeof MESSAGE_TYPES)[number];
export interface HistoryPage {
  messages: MessageView[];
  hasMore: boolean;
}

/** What a view needs from its connection. */
export interface ViewConnection {
  /** Who this connection is (the `user` option, or the token's `sub`), when known. */
  readonly user: string | undefined;
  /** Queues one operation of the group in the outbox; `pending` is absent when it was refused before queueing. */
  enqueue(group: string, op: Operation, fields: object, target?: string): { promise: Promise<Answer>; pending?: Pending };
  /** Sends a frame that needs no answer (typing, the presence question), now or never. */
  sendNow(group: string, frame: Record<string, unknown>): void;
  /** The view saw a seq gap: have the group replayed from its last seq. */
  resync(view: GroupView): void;
  /** GET on the server with the connection's identity. */
  fetchJson(path: string): Promise<unknown>;
  /** Operations of the group not answered yet. */
  outboxCount(group: string): number;
}

export interface GroupViewOptions {
  historyLimit: number;
  presence: boolean;
  /** Members' markers and presence only while focused (see ChatConnectionOptions.focusOnly). */
  focusOnly: boolean;
  typing: Required<TypingOptions>;
}

export interface GroupViewEvents {
  state: (state: GroupViewState) => void;
  created: (message: MessageView, event: MessageEvent) => void;
  replied: (message: MessageView, event: MessageEvent) => void;
  updated: (message: MessageView, event: MessageEvent) => void;
  /** `message` is the tombstone when the deleted message was loaded, else undefined. */
  deleted: (event: DeleteEvent, message: MessageView | undefined) => void;
  seen: (event: SeenEvent) => void;
  /** A member's read marker moved forward. */
  read: (event: ReadEvent) => void;
  typing: (event: TypingEvent) => void;
  /** Who is typing now (others only), each expiring without a refresh. */
  typers: (users: string[]) => void;
  /** Who is online changed (a `presence` answer on going live, then join and leave events). */
  presence: (state: PresenceState) => void;
  /** Every stored event, in seq order, exactly once. */
  event: (event: GroupEvent) => void;
  /** A page of history was merged into `messages`; `reset`: it replaced them. */
  history: (page: HistoryPage, reset: boolean) => void;
  /** `messages`, markers, `unread` or `hasMore` changed. */
  change: () => void;
  /** An error frame about the group that answers no operation. */
  error: (error: ChatRequestError) => void;
  /** Operations saved by an earlier client (before a page reload), queued again; once. */
  restored: (operations: RestoredOperation[]) => void;
}

export class GroupView extends Emitter<GroupViewEvents> {
  private readonly timeline = new Timeline();
  private readonly markers = new ReadMarkers();
  private readonly typingSender: TypingSender;
  private readonly typersTracker: Typers;
  private readonly online = new PresenceList((state) => this.emit("presence", state));
  private seq: number | null;
  private current: GroupViewState = "subscribing";
  /** This user's unread count: a server snapshot plus the stored events after it (unread.ts). */
  private readonly counter = new UnreadCounter();
  /** A `read` that asks the server for a fresh count is in flight; `again`: ask once more after it. */
  private refreshing: { again: boolean } | null = null;
  /** The server does not know `read` (a seed-style server): unread counts what is loaded. */
  private noReadState = false;
  /** `unread` was asked for: from then on a missing count is asked of the server (never before). */
  private countWanted = false;
  /** Members' markers and presence are kept (always, unless the `focusOnly` option). */
  private focused: boolean;
  private settleSubscribed!: { resolve: () => void; reject: (e: ChatRequestError) => void };
  /** Resolves once the group is first live; rejects when it is refused or closed first. */
  readonly subscribed: Promise<void>;
  /** Gaps seen in a row (the connection's backoff for replays); reset after staying live. */
  gaps = 0;
  private gapsReset: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly group: string,
    private readonly conn: ViewConnection,
    since: number | null,
    private readonly opts: GroupViewOptions,
    private readonly gapResetMs: number,
  ) {
    super((err) => console.error("chatroom client: a listener threw", err));
    this.seq = since;
    this.focused = !opts.focusOnly;
    if (since !== null) this.counter.start(since);
    this.subscribed = new Promise<void>((resolve, reject) => (this.settleSubscribed = { resolve, reject }));
    this.subscribed.catch(() => {});
    this.typingSender = new TypingSender((status) => this.conn.sendNow(group, { operation: "typing", typing_status: status }), opts.typing);
    this.typersTracker = new Typers(opts.typing.expireMs, (users) => this.emit("typers", users));
  }

  // ---- state ---------------------------------------------------------------------------

  get state(): GroupViewState {
    return this.current;
  }

  /** The seq of the last stored event applied, or null before the first; store it to resume later with `since`. */
  get lastSeq(): number | null {
    return this.seq;
  }

  /** The messages known so far, oldest first, in their current state (tombstones included). */
  get messages(): readonly MessageView[] {
    return this.timeline.messages;
  }

  message(id: string): MessageView | undefined {
    return this.timeline.message(id);
  }

  /** Whether older messages exist before the first of `messages`. */
  get hasMore(): boolean {
    return this.timeline.hasMore;
  }

  /** The timeline's version (counts the events applied). */
  get version(): number {
    return this.timeline.version;
  }

  wasDeleted(messageId: string): boolean {
    return this.timeline.wasDeleted(messageId);
  }

  /**
   * Messages (create, reply) by others after this user's marker, not deleted, as the server
   * counts them: its last count (a conversation list entry, a `read` ack, or a `read` event of
   * this user's marker from any of their devices) plus the stored events since (see unread.ts).
   * Until the first count comes (asked for the first time `unread` is read), the loaded messages
   * are counted.
   */
  get unread(): number {
    const me = this.conn.user;
    if (me === undefined) return 0;
    if (!this.countWanted) {
      this.countWanted = true;
      this.checkCount();
    }
    return this.counter.count(me, this.markers.of(me), () => this.markers.unread(me, this.timeline.messages));
  }

  /** A member's read marker (this connection's user by default; 0 before any). */
  readMarker(user = this.conn.user): number {
    return user === undefined ? 0 : this.markers.of(user);
  }

  /** Members other than the author whose read marker reached the message: "seen by" that survives a reload. */
  readBy(messageId: string): string[] {
    const m = this.timeline.message(messageId);
    return m ? this.markers.seenBy(m) : [];
  }

  /** Who has seen a message (seen events since this view was made), user to `seen_at`. */
  seenBy(messageId: string): ReadonlyMap<string, string> {
    return this.timeline.seenBy(messageId);
  }

  /** Others typing now. */
  get typers(): string[] {
    return this.typersTracker.users;
  }

  /** Who is online in the group: the server's count and the users known by name. */
  get presence(): PresenceState {
    return this.online.state;
  }

  /** Operations of this group not answered yet (queued offline or in flight). */
  get outbox(): number {
    return this.conn.outboxCount(this.group);
  }

  /**
   * Takes a conversation list entry (`groups` answer): its unread count and this user's marker,
   * and, for a view that holds no message yet, its last message (a view followed with `known`
   * starts so, without loading history). Call again with a later list (after a reconnect) to take
   * marker moves made meanwhile on other devices.
   */
  seed(c: ConversationView): void {
    if (c.group !== this.group) throw new TypeError(`the entry is of group ${c.group}, not ${this.group}`);
    if (c.last_message && this.timeline.messages.length === 0) this.timeline.older([c.last_message], c.last_seq > 1);
    this.counted({ lastSeq: c.last_seq, readSeq: c.read_seq, unread: c.unread });
  }

  // ---- operations ------------------------------------------------------------------------

  /** Sends one frame of any operation of this group; resolves with its answer (`ack`, `history`, `presence`). */
  request<Op extends Operation>(op: Op, fields: RequestInput<Op>): Promise<RequestAnswer<Op>> {
    return this.conn.enqueue(this.group, op, fields).promise as Promise<RequestAnswer<Op>>;
  }

  /** Creates a message; `type` defaults from the file (image/* → image, else file; none → text). */
  send(body: string, opts: { file?: FileInput; type?: MessageType } = {}): Promise<AckEvent> {
    return this.create({ body, type: opts.type ?? typeOf(opts.file), ...(opts.file === undefined ? {} : { file: opts.file }) });
  }

  create(frame: RequestInput<"create">): Promise<AckEvent> {
    this.typingSender.stop();
    return this.request("create", frame);
  }

  reply(messageId: string, body: string, opts: { file?: FileInput; type?: MessageType } = {}): Promise<AckEvent> {
    this.typingSender.stop();
    return this.request("reply", { message_id: messageId, body, type: opts.type ?? typeOf(opts.file), ...(opts.file === undefined ? {} : { file: opts.file }) });
  }

  /** Changes a message's body; `file: null` removes its attachment, absent keeps it. */
  edit(messageId: string, body: string, opts: { file?: FileInput | null } = {}): Promise<AckEvent> {
    return this.request("update", { message_id: messageId, body, ...(opts.file === undefined ? {} : { file: opts.file }) });
  }

  delete(messageId: string): Promise<AckEvent> {
    return this.conn.enqueue(this.group, "delete", { message_id: messageId }, messageId).promise as Promise<AckEvent>;
  }

  seen(messageId: string): Promise<AckEvent> {
    return this.request("seen", { message_id: messageId });
  }

  /** Moves this user's read marker forward to `seq` (default: the last event applied); the ack carries the marker. */
  async read(seq = this.seq ?? 0): Promise<AckEvent> {
    const ack = await this.request("read", { seq });
    this.readAnswered(ack);
    return ack;
  }

  /**
   * With the `focusOnly` option: the application shows this group now; its members' markers
   * ("seen by") are loaded and, with `presence`, who is online is asked, now and each time it goes
   * live, until `blur()`.
   */
  focus(): void {
    if (this.focused) return;
    this.focused = true;
    if (this.current === "live") this.details();
  }

  /** With the `focusOnly` option: the group is no longer shown (events keep coming; markers and presence are no longer asked). */
  blur(): void {
    if (this.opts.focusOnly) this.focused = false;
  }

  /** Call on every keystroke: sends `typing` (throttled) and `not_typing` after inactivity. */
  typing(): void {
    if (this.current === "live") this.typingSender.keystroke();
  }

  /** Sends `not_typing` now if `typing` was sent (sending a message does this too). */
  stopTyping(): void {
    this.typingSender.stop();
  }

  /** One page of history, as the server answers it; `messages` is not changed. */
  async history(opts: { before?: string; limit?: number } = {}): Promise<HistoryPage> {
    const h = await this.request("history", opts);
    return { messages: h.messages, hasMore: h.has_more };
  }

  /** Loads the page before the oldest known message into `messages` (the newest page when none is known). */
  async loadOlder(limit = this.opts.historyLimit || 50): Promise<HistoryPage> {
    const before = this.timeline.oldestId;
    if (before === undefined) return this.loadLatest(limit);
    const h = await this.request("history", { before, limit });
    this.timeline.older(h.messages, h.has_more);
    const page = { messages: h.messages, hasMore: h.has_more };
    this.emit("history", page, false);
    this.emit("change");
    return page;
  }

  /** Replaces `messages` with the newest page, keeping what live events changed meanwhile. */
  async loadLatest(limit = this.opts.historyLimit || 50): Promise<HistoryPage> {
    const { promise, pending } = this.conn.enqueue(this.group, "history", { limit });
    let h: HistoryEvent;
    try {
      h = (await promise) as HistoryEvent;
    } catch (err) {
      if (err instanceof ChatRequestError && err.code !== "closed") this.emit("error", err);
      throw err;
    }
    this.timeline.latest(h.messages, h.has_more, pending!.sentVersion);
    const page = { messages: h.messages, hasMore: h.has_more };
    this.emit("history", page, true);
    this.emit("change");
    return page;
  }

  /** Reads every member's marker (GET /api/groups/<group>/members, all pages). */
  async loadMembers(): Promise<void> {
    let before: string | undefined;
    for (let page = 0; page < 100; page++) {
      const q = new URLSearchParams({ limit: "100", ...(before === undefined ? {} : { before }) });
      const body = (await this.conn.fetchJson(`/api/groups/${encodeURIComponent(this.group)}/members?${q}`)) as { members: MemberView[]; has_more: boolean };
      this.markers.load(body.members);
      this.checkCount();
      this.emit("change");
      if (!body.has_more || body.members.length === 0) return;
      before = body.members[body.members.length - 1]!.user;
    }
  }

  // ---- from the connection ---------------------------------------------------------------

  /** The socket is open and follows this group; `resuming`: a replay and `resumed` come first. */
  opened(resuming: boolean): void {
    if (this.current === "closed") return;
    if (resuming) return this.setState("syncing");
    this.goLive();
  }

  /** The answer to `subscribe` (multiplexed socket): the group's last seq. */
  subscribeAnswered(lastSeq: number, resuming: boolean): void {
    if (this.current === "closed") return;
    if (resuming) return this.setState("syncing");
    const fresh = this.seq === null;
    this.seq ??= lastSeq;
    this.counter.start(this.seq);
    this.goLive(fresh);
  }

  subscribeFailed(e: ChatRequestError): void {
    this.settleSubscribed.reject(e);
    this.emit("error", e);
  }

  /** The connection is gone: typing stops, typers are forgotten; it comes back by itself. */
  lost(): void {
    this.typingSender.reset();
    this.typersTracker.clear();
    clearTimeout(this.gapsReset);
    if (this.current !== "closed") this.setState("offline");
  }

  /** Waiting to follow the group again (a new socket, or a replay after a gap). */
  resubscribing(): void {
    clearTimeout(this.gapsReset);
    if (this.current !== "closed") this.setState("subscribing");
  }

  /** Unfollowed, or the connection closed: nothing more comes. */
  closed(): void {
    if (this.current === "live") this.typingSender.stop();
    this.typingSender.reset();
    this.typersTracker.clear();
    this.online.clear();
    clearTimeout(this.gapsReset);
    this.setState("closed");
    this.settleSubscribed.reject(new ChatRequestError("closed", "the group was closed"));
  }

  /** Emitted after the current task, so that listeners attached right after `follow()` (or before `connect()`) hear it. */
  restored(ops: RestoredOperation[]): void {
    if (ops.length > 0) queueMicrotask(() => this.emit("restored", ops));
  }

  /** A frame about this group. */
  receive(f: ServerEvent): void {
    if (this.current === "closed") return;
    switch (f.operation) {
      case "create":
      case "reply":
      case "update":
      case "delete":
        return this.stored(f);
      case "resumed":
        if (this.current !== "syncing") return;
        if (this.seq === null || f.seq > this.seq) this.seq = f.seq;
        return this.goLive(false);
      case "read": {
        const moved = this.markers.read(f);
        // This user's own marker, moved on any of their devices: the count comes with it.
        if (f.user === this.conn.user) this.counted({ lastSeq: f.last_seq, readSeq: f.read_seq, unread: f.unread });
        if (!moved) return;
        this.emit("read", f);
        return this.emit("change");
      }
      case "seen":
        if (!this.timeline.seen(f)) return;
        this.emit("seen", f);
        return this.emit("change");
      case "typing":
        if (f.user !== this.conn.user) {
          if (f.typing_status === "not_typing") this.typersTracker.stopped(f.user);
          else this.typersTracker.typing(f.user);
        }
        return this.emit("typing", f);
      case "presence":
        return this.online.answer(f);
      case "join":
      case "leave":
        return this.online.event(f);
      case "error":
        // While syncing the only error without a request is the refusal of our `since`: the server
        // does not have the stream we knew (its database was reset). Start over from its history.
        if (this.current === "syncing" && f.code === "bad_request") {
          this.seq = null;
          this.counter.reset();
          this.goLive(true);
        }
        return this.emit("error", new ChatRequestError(f.code, f.message));
      default:
        return;
    }
  }

  private stored(e: MessageEvent | DeleteEvent): void {
    if (this.current === "subscribing") return; // a late event of an abandoned subscription: the replay brings it
    if (this.seq !== null) {
      if (e.seq <= this.seq) return; // already applied (a replay overlapping what we had)
      // The server promises no gap; should one appear anyway, have it replayed from where we are.
      if (e.seq !== this.seq + 1) return this.conn.resync(this);
    }
    this.seq = e.seq;
    if (e.operation === "delete") {
      this.counter.deleted(e.seq, e.message_seq, e.author);
      this.emit("deleted", e, this.timeline.deleted(e.message_id));
    } else {
      const m = e.message;
      if (e.operation !== "update") this.counter.message(m.seq, m.user);
      this.timeline.stored(m, e.operation === "update");
      if (e.operation !== "update") this.typersTracker.stopped(m.user);
      this.emit(e.operation === "create" ? "created" : e.operation === "reply" ? "replied" : "updated", m, e);
    }
    this.emit("event", e);
    this.emit("change");
  }

  private goLive(fresh = this.seq === null): void {
    this.setState("live");
    clearTimeout(this.gapsReset);
    this.gapsReset = setTimeout(() => (this.gaps = 0), this.gapResetMs);
    // No position to resume from (a fresh start, or the server lost the stream we knew): the
    // newest page of history is the starting point.
    if (fresh && this.opts.historyLimit > 0) this.loadLatest(this.opts.historyLimit).catch(() => {}); // reported as an error event
    if (this.focused) this.details();
    this.settleSubscribed.resolve();
    this.checkCount();
  }

  /** What a shown group needs besides its events: members' markers and who is online. */
  private details(): void {
    // Members' markers, for "seen by": `read` events keep them current from here on.
    this.loadMembers().catch((err) => this.emit("error", new ChatRequestError("unavailable", `cannot load the members' read markers: ${(err as Error).message}`)));
    // Joins and leaves missed while offline: the answer replaces what we knew.
    if (this.opts.presence) this.conn.sendNow(this.group, { operation: "presence" });
  }

  /** A count from the server for this user (with their marker then): the unread count starts from it. */
  private counted(s: UnreadSnapshot): void {
    const me = this.conn.user;
    if (me !== undefined) this.markers.set(me, s.readSeq);
    this.counter.snapshot(s);
    this.checkCount();
    this.emit("change");
  }

  /** The ack of a `read`: the marker, and the count with it. */
  private readAnswered(ack: AckEvent): void {
    if (ack.read_seq === undefined) return;
    if (ack.unread !== undefined && ack.last_seq !== undefined) return this.counted({ lastSeq: ack.last_seq, readSeq: ack.read_seq, unread: ack.unread });
    const me = this.conn.user;
    if (me !== undefined && this.markers.set(me, ack.read_seq)) this.emit("change");
  }

  /**
   * Asks the server for a fresh count when the one held cannot answer for this user's marker
   * now: a `read` of seq 0 moves nothing and its ack carries the marker and the count.
   */
  private checkCount(): void {
    const me = this.conn.user;
    if (me === undefined || !this.countWanted || this.noReadState || this.current !== "live" || !this.counter.needsRefresh(this.markers.of(me))) return;
    if (this.refreshing) {
      this.refreshing.again = true;
      return;
    }
    const asking = (this.refreshing = { again: false });
    this.conn.enqueue(this.group, "read", { seq: 0 }).promise.then(
      (ack) => this.readAnswered(ack as AckEvent),
      (err: unknown) => {
        if (err instanceof ChatRequestError && err.code === "unknown_operation") this.noReadState = true;
      },
    ).finally(() => {
      if (this.refreshing === asking) this.refreshing = null;
      if (asking.again) this.checkCount();
    });
  }

  private setState(state: GroupViewState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit("state", state);
  }
}

export function typeOf(file: FileInput | undefined): MessageType {
  if (file === undefined) return "text";
  return typeof file !== "string" && file.content_type.toLowerCase().startsWith("image/") ? "image" : "file";
}
