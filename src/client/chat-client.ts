// The client SDK for one group: a thin view over a ChatConnection in single-group mode (the
// per-group endpoint `/ws/chat/<group>/`, which seed-style servers speak) and its one GroupView.
// Everything it promises is theirs, in one implementation (connection.ts, group-view.ts,
// outbox.ts):
// - every operation returns a promise, resolved by the frame's `ack` (or `history`) and rejected
//   with a ChatRequestError carrying the server's `error` code, correlated by `request_id`;
// - stored events (create, reply, update, delete) reach the listeners exactly once and in `seq`
//   order, across reconnects: the SDK reconnects with jittered exponential backoff and resumes
//   with `?since=<last seq it delivered>`, drops repeats by seq and, should it ever see a gap,
//   reconnects to have the server replay it;
// - operations issued while disconnected wait in an outbox and are sent, in order, once the
//   connection is live again, with the same `request_id` (the server de-duplicates, so a retry
//   never stores a message twice); `unavailable` and `rate_limited` answers are retried after a
//   backoff until `queueTimeoutMs` runs out; with `outboxStorage` the outbox survives a reload;
// - every reconnect waits its backoff delay; a rebalance close (4012) the first, jittered one;
//   a 4001 (token expired) calls the token function with `{expired: true}` and resumes.
// What it adds is this class's shape: one `state` that joins the socket's and the group's
// (connecting, syncing, live, ...), `connect()` resolving once live, and one event stream.
import type { AckEvent, MessageView, Operation } from "../protocol/index.ts";
import { ChatConnection, type ChatConnectionOptions, type ConnectionChange } from "./connection.ts";
import { Emitter } from "./emitter.ts";
import { ChatRequestError } from "./errors.ts";
import { GroupView, type GroupViewEvents, type HistoryPage, type MessageType, type RequestAnswer, type RequestInput } from "./group-view.ts";
import type { PresenceState } from "./presence.ts";
import type { FileInput } from "../protocol/index.ts";

export type { WebSocketConstructor, WebSocketLike } from "./socket.ts";
export { CLOSE_REBALANCE, CLOSE_TOKEN_EXPIRED, socketUrl } from "./socket.ts";
export type { RestoredOperation } from "./outbox.ts";
export type { HistoryPage, MessageType, RequestInput } from "./group-view.ts";
export type Answer<Op extends Operation> = RequestAnswer<Op>;

export interface ChatClientOptions extends Omit<ChatConnectionOptions, "group"> {
  /** The group to join (1 to 99 of A-Z a-z 0-9 - _ .). */
  group: string;
  /**
   * Resume from this seq on the first connection (e.g. one stored by a previous session):
   * the server replays every later event. Without it the SDK connects live and loads the
   * newest `historyLimit` messages.
   */
  since?: number;
}

/**
 * - `idle`: constructed, `connect()` not called yet (operations already queue);
 * - `connecting`: a socket is opening;
 * - `syncing`: open, receiving the replay of what was missed (`?since=`);
 * - `live`: caught up; operations are sent as they are made;
 * - `reconnecting`: the connection is gone; the next attempt is scheduled;
 * - `closed`: `close()` was called.
 */
export type ConnectionState = "idle" | "connecting" | "syncing" | "live" | "reconnecting" | "closed";

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** reconnecting: the delay before the next attempt, and how many attempts failed so far. */
  delayMs?: number;
  attempt?: number;
  /** reconnecting: the WebSocket close code and reason of the connection that ended. */
  code?: number;
  reason?: string;
}

export interface ChatClientEvents extends Omit<GroupViewEvents, "state"> {
  state: (change: StateChange) => void;
}

/** The view's events the client hands on as they are. */
const FORWARDED = ["created", "replied", "updated", "deleted", "seen", "read", "typing", "typers", "presence", "event", "history", "change", "error", "restored"] as const;

export class ChatClient extends Emitter<ChatClientEvents> {
  readonly group: string;
  private readonly conn: ChatConnection;
  private readonly view: GroupView;
  private current: ConnectionState = "idle";
  private readonly liveOnce: Promise<void>;
  private settleLiveOnce!: { resolve: () => void; reject: (err: unknown) => void };

  constructor(options: ChatClientOptions) {
    super((err) => console.error("chatroom client: a listener threw", err));
    const { since, ...rest } = options;
    this.conn = new ChatConnection(rest); // checks the group, the WebSocket class and the URL
    this.group = options.group;
    this.view = this.conn.follow(options.group, since === undefined ? {} : { since });
    for (const name of FORWARDED) {
      this.view.on(name, ((...args: unknown[]) => (this.emit as (e: string, ...a: unknown[]) => void)(name, ...args)) as never);
    }
    this.conn.on("error", (err) => this.emit("error", err));
    this.conn.on("state", (change) => this.update(change));
    this.view.on("state", () => this.update());
    this.liveOnce = new Promise<void>((resolve, reject) => (this.settleLiveOnce = { resolve, reject }));
    this.liveOnce.catch(() => {}); // close() before connect() must not be an unhandled rejection
  }

  /** The socket's state and the group's, as one. */
  private update(change?: ConnectionChange): void {
    const s = this.conn.state;
    const g = this.view.state;
    const state: ConnectionState = s === "live" ? (g === "live" ? "live" : g === "syncing" ? "syncing" : "connecting") : s;
    const previous = this.current;
    if (state === previous) return;
    this.current = state;
    const { state: _, previous: __, ...extra } = change ?? { state, previous };
    this.emit("state", { state, previous, ...extra });
    if (state === "live") this.settleLiveOnce.resolve();
    if (state === "closed") this.settleLiveOnce.reject(new ChatRequestError("closed", "the client was closed"));
  }

  // ---- state ---------------------------------------------------------------------------

  get state(): ConnectionState {
    return this.current;
  }

  /** The seq of the last stored event delivered, or null before the first one. Store it to resume later with `since`. */
  get lastSeq(): number | null {
    return this.view.lastSeq;
  }

  /** Who this client is (the `user` option, or the token's `sub`), when known. */
  get user(): string | undefined {
    return this.conn.user;
  }

  /** The messages known so far, oldest first, in their current state (tombstones included). */
  get messages(): readonly MessageView[] {
    return this.view.messages;
  }

  message(id: string): MessageView | undefined {
    return this.view.message(id);
  }

  /** Whether older messages exist before the first of `messages`. */
  get hasMore(): boolean {
    return this.view.hasMore;
  }

  /** Members other than the author whose read marker reached the message: "seen by" that survives a reload. */
  readBy(messageId: string): string[] {
    return this.view.readBy(messageId);
  }

  /** A member's read marker (this client's user by default; 0 before any). */
  readMarker(user?: string): number {
    return this.view.readMarker(user);
  }

  /** Loaded messages by others after this user's marker, not deleted. */
  get unread(): number {
    return this.view.unread;
  }

  /** Who has seen a message (seen since this client connected), user to `seen_at`. */
  seenBy(messageId: string): ReadonlyMap<string, string> {
    return this.view.seenBy(messageId);
  }

  /** Others typing now. */
  get typers(): string[] {
    return this.view.typers;
  }

  /** Who is online in the group: the server's count and the users known by name. */
  get presence(): PresenceState {
    return this.view.presence;
  }

  /** Operations not answered yet (queued offline or in flight). */
  get outbox(): number {
    return this.view.outbox;
  }

  // ---- connection ----------------------------------------------------------------------

  /** Starts connecting; resolves once live the first time (it keeps retrying until then), rejects on close(). */
  connect(): Promise<void> {
    this.conn.connect();
    return this.liveOnce;
  }

  /** Skips the wait of a scheduled reconnect (e.g. when the browser reports it is online again). */
  reconnectNow(): void {
    this.conn.reconnectNow();
  }

  /** Closes the connection for good; operations not answered yet are rejected with `closed`. */
  close(): void {
    this.conn.close();
  }

  // ---- operations ------------------------------------------------------------------------

  /**
   * Sends one frame of any operation and resolves with its answer (`ack`, `history`, `presence`).
   * The frame is checked against the protocol's schema first (`bad_request` without sending).
   */
  request<Op extends Operation>(op: Op, fields: RequestInput<Op>): Promise<Answer<Op>> {
    return this.view.request(op, fields);
  }

  /** Creates a message; `type` defaults from the file (image/* → image, else file; none → text). */
  send(body: string, opts: { file?: FileInput; type?: MessageType } = {}): Promise<AckEvent> {
    return this.view.send(body, opts);
  }

  create(frame: RequestInput<"create">): Promise<AckEvent> {
    return this.view.create(frame);
  }

  reply(messageId: string, body: string, opts: { file?: FileInput; type?: MessageType } = {}): Promise<AckEvent> {
    return this.view.reply(messageId, body, opts);
  }

  /** Changes a message's body; `file: null` removes its attachment, absent keeps it. */
  edit(messageId: string, body: string, opts: { file?: FileInput | null } = {}): Promise<AckEvent> {
    return this.view.edit(messageId, body, opts);
  }

  delete(messageId: string): Promise<AckEvent> {
    return this.view.delete(messageId);
  }

  seen(messageId: string): Promise<AckEvent> {
    return this.view.seen(messageId);
  }

  /** Moves this user's read marker forward to `seq` (default: the last event delivered); the ack carries the marker. */
  read(seq?: number): Promise<AckEvent> {
    return this.view.read(seq);
  }

  /** Reads every member's marker (GET /api/groups/<group>/members, all pages). */
  loadMembers(): Promise<void> {
    return this.view.loadMembers();
  }

  /** Call on every keystroke: sends `typing` (throttled) and `not_typing` after inactivity. */
  typing(): void {
    this.view.typing();
  }

  /** Sends `not_typing` now if `typing` was sent (sending a message does this too). */
  stopTyping(): void {
    this.view.stopTyping();
  }

  /** One page of history, as the server answers it; `messages` is not changed. */
  history(opts: { before?: string; limit?: number } = {}): Promise<HistoryPage> {
    return this.view.history(opts);
  }

  /** Loads the page before the oldest known message into `messages`. */
  loadOlder(limit?: number): Promise<HistoryPage> {
    return this.view.loadOlder(limit);
  }
}

/** Creates a client and connects it; resolves once it is live. */
export async function connectChat(options: ChatClientOptions): Promise<ChatClient> {
  const client = new ChatClient(options);
  await client.connect();
  return client;
}
