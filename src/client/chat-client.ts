// The client SDK: one group, one connection that survives network drops and server restarts.
//
// What it promises the application:
// - every operation returns a promise, resolved by the frame's `ack` (or `history`) and rejected
//   with a ChatRequestError carrying the server's `error` code, correlated by `request_id`;
// - stored events (create, reply, update, delete) reach the listeners exactly once and in `seq`
//   order, across reconnects: the SDK reconnects with jittered exponential backoff and resumes
//   with `?since=<last seq it delivered>`, drops repeats by seq and, should it ever see a gap,
//   reconnects to have the server replay it;
// - operations issued while disconnected wait in an outbox and are sent, in order, once the
//   connection is live again; an operation whose answer was lost with the connection is sent
//   again with the same `request_id`, which the server de-duplicates, so a retry never stores a
//   message twice. An operation answered `unavailable` or `rate_limited` is retried the same
//   way after a backoff, until its `queueTimeoutMs` runs out. With `outboxStorage` the outbox
//   survives a page reload (see saved-outbox.ts);
// - every reconnect, whatever its cause (a dropped connection, a gap, an expired token), waits
//   its backoff delay; the delay grows until a connection has stayed live for `reconnect.maxMs`;
// - when the server closes the socket because the token expired (4001), the token function is
//   called with `{expired: true}` for a fresh one, and the client resumes from its last seq.
// The frame types and the validation of what goes out and comes in are the server's own valibot
// schemas (src/protocol), so the SDK cannot drift from the protocol.
import * as v from "valibot";
import {
  ClientFrames,
  GroupName,
  MESSAGE_TYPES,
  ServerEvent,
  type AckEvent,
  type DeleteEvent,
  type ErrorEvent,
  type FileInput,
  type GroupEvent,
  type HistoryEvent,
  type MessageEvent,
  type MessageView,
  type Operation,
  type MemberView,
  type PresenceEvent,
  type ReadEvent,
  type SeenEvent,
  type TypingEvent,
} from "../protocol/index.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { Emitter } from "./emitter.ts";
import { ChatRequestError } from "./errors.ts";
import { isSaved, SavedOutbox, type OutboxStorage, type SavedOperation } from "./saved-outbox.ts";
import { Timeline } from "./timeline.ts";
import { ReadMarkers } from "./read-markers.ts";
import { PresenceList, type PresenceState } from "./presence.ts";
import { Typers, TypingSender, type TypingOptions } from "./typing.ts";

/** The part of the WebSocket API the SDK uses: the browser's and `ws`'s both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onopen: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onmessage: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onclose: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onerror: ((ev: any) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

type MaybeAsync<T> = T | Promise<T>;

export interface ChatClientOptions {
  /** The group to join (1 to 99 of A-Z a-z 0-9 - _ .). */
  group: string;
  /**
   * The server's base URL (`http(s)://` or `ws(s)://`, with an optional path prefix), or a
   * function called before every connection attempt (to pick a node, or follow one that moved).
   * Default in a browser: the page's origin.
   */
  url?: string | (() => MaybeAsync<string>);
  /** Open dev mode: connect as this user (`?user=`). */
  user?: string;
  /**
   * JWT mode: the token (`?token=`), or a function called before every connection attempt;
   * `expired` is true when the server closed the last connection because the token expired
   * (4001): return a fresh one then.
   */
  token?: string | ((context: { expired: boolean }) => MaybeAsync<string>);
  /** The WebSocket class; default: the global one (browsers, Node >= 22). In Node 20 pass `ws`. */
  WebSocket?: WebSocketConstructor;
  /**
   * Resume from this seq on the first connection (e.g. one stored by a previous session):
   * the server replays every later event. Without it the SDK connects live and loads the
   * newest `historyLimit` messages.
   */
  since?: number;
  /** Messages loaded when starting without a seq to resume from; 0 loads none. Default 50. */
  historyLimit?: number;
  /** How long an answer may take once a frame is sent. Default 10000. */
  timeoutMs?: number;
  /** How long an operation may wait in total, offline time included. Default 60000; Infinity waits for ever. */
  queueTimeoutMs?: number;
  /** How long a connection attempt may take before it is abandoned and retried. Default 10000. */
  connectTimeoutMs?: number;
  reconnect?: BackoffOptions;
  typing?: TypingOptions;
  /** Check every incoming frame against the protocol's schemas. Default true. */
  validate?: boolean;
  /**
   * Where to keep the outbox across reloads (`localStorage` in a page): operations made before
   * a reload are sent again, with their original request_ids, by the next client of the same
   * group and user. Default: none (the outbox lives in memory only).
   */
  outboxStorage?: OutboxStorage;
  /**
   * The oldest saved operation sent again after a reload, when `queueTimeoutMs` does not bound
   * it already. Default 86400000 (24 h, the server's default RETRY_WINDOW_S: an older retry
   * could be stored twice).
   */
  outboxMaxAgeMs?: number;
  /**
   * Keep `presence` (who is online) current: ask the server each time the connection goes live,
   * then follow join and leave events. Default false (join and leave are still followed).
   */
  presence?: boolean;
}

/** An operation a previous client (before a reload) left in the saved outbox, sent again. */
export interface RestoredOperation {
  requestId: string;
  operation: Operation;
  /** The frame as it was sent. */
  frame: Record<string, unknown>;
  /** Its answer, or a ChatRequestError (never an unhandled rejection). */
  result: Promise<AckEvent>;
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

export type RequestInput<Op extends Operation> = v.InferInput<(typeof ClientFrames)[Op]>;
export type Answer<Op extends Operation> = Op extends "history" ? HistoryEvent : Op extends "presence" ? PresenceEvent : AckEvent;
export type MessageType = (typeof MESSAGE_TYPES)[number];
export interface HistoryPage {
  messages: MessageView[];
  hasMore: boolean;
}

export interface ChatClientEvents {
  state: (change: StateChange) => void;
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
  /** `messages`, `seenBy` or `hasMore` changed. */
  change: () => void;
  /** An error frame that answers no pending operation, or a frame outside the protocol. */
  error: (error: ChatRequestError) => void;
  /** Operations saved by an earlier client (before a page reload), queued again; once, on the first connection attempt. */
  restored: (operations: RestoredOperation[]) => void;
}

interface Pending {
  requestId: string;
  op: Operation;
  payload: string;
  /** The message a delete targets (a retried delete of a message seen deleted succeeded). */
  target: string | undefined;
  resolve: (answer: AckEvent | HistoryEvent | PresenceEvent) => void;
  reject: (err: ChatRequestError) => void;
  /** Sent on the current socket and awaiting its answer. */
  sent: boolean;
  attempts: number;
  /** The store's version when last sent: history merges keep what changed after it. */
  sentVersion: number;
  /** When it was made (ms since the epoch); a restored operation keeps its original time. */
  at: number;
  answerTimer?: ReturnType<typeof setTimeout>;
  lifeTimer?: ReturnType<typeof setTimeout>;
  retryTimer?: ReturnType<typeof setTimeout>;
}

const OPEN = 1;
/** Close codes: the server's, and the ones the client reports when it gives up on a socket itself. */
export const CLOSE_TOKEN_EXPIRED = 4001;
const CLOSE_GAP = 4000;
const CLOSE_CONNECT_TIMEOUT = 4002;
const decoder = new TextDecoder();

function randomPrefix(): string {
  const bytes = new Uint8Array(9);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(36).padStart(2, "0")).join("");
}

/** The `sub` of a JWT, read without verifying it (only to tell our own typing from others'). */
function jwtSubject(token: string): string | undefined {
  try {
    const part = token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const json = decoder.decode(Uint8Array.from(atob(part + "=".repeat((4 - (part.length % 4)) % 4)), (c) => c.charCodeAt(0)));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === "string" ? sub : undefined;
  } catch {
    return undefined;
  }
}

/** `ws(s)://host[/prefix]/ws/chat/<group>/?…` from a base URL of any of the usual shapes. */
export function socketUrl(base: string, group: string, params: URLSearchParams): string {
  const url = new URL(base);
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/ws/chat/${encodeURIComponent(group)}/`;
  url.search = params.toString();
  url.hash = "";
  return url.toString();
}

export class ChatClient extends Emitter<ChatClientEvents> {
  readonly group: string;
  private readonly opts: {
    timeoutMs: number;
    queueTimeoutMs: number;
    connectTimeoutMs: number;
    historyLimit: number;
    validate: boolean;
    backoff: Required<BackoffOptions>;
    outboxMaxAgeMs: number;
  };
  private readonly WS: WebSocketConstructor;

  private current: ConnectionState = "idle";
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Resets the backoff once a connection has stayed live long enough (see goLive). */
  private stableTimer: ReturnType<typeof setTimeout> | undefined;
  /** The server closed the last connection because the token expired: ask for a fresh one. */
  private tokenExpired = false;
  /** The outbox's copy in `outboxStorage`, once the user (part of its key) is known. */
  private saved: SavedOutbox | undefined;
  private restoreDone = false;
  private liveOnce: Promise<void>;
  private settleLiveOnce!: { resolve: () => void; reject: (err: unknown) => void };

  private seq: number | null;
  private readonly pending = new Map<string, Pending>();
  private readonly idPrefix = randomPrefix();
  private counter = 0;

  private readonly timeline = new Timeline();
  /** Members' read markers: the members list at each going live, then `read` events. */
  private readonly markers = new ReadMarkers();
  /** Where and as whom the last connection went, for the members list over HTTP. */
  private http: { base: string; user?: string; token?: string } | null = null;
  private me: string | undefined;

  private readonly typingSender: TypingSender;
  private readonly typersTracker: Typers;
  private readonly online = new PresenceList((state) => this.emit("presence", state));
  private readonly onOnline = () => this.reconnectNow();

  constructor(private readonly options: ChatClientOptions) {
    super((err) => console.error("chatroom client: a listener threw", err));
    if (!v.is(GroupName, options.group)) throw new TypeError(`invalid group name ${JSON.stringify(options.group)}: 1 to 99 characters of A-Z a-z 0-9 - _ .`);
    this.group = options.group;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError("no WebSocket class: pass one as the WebSocket option (in Node 20: the ws package's)");
    this.WS = WS;
    if (options.url === undefined && typeof globalThis.location?.origin !== "string") throw new TypeError("url is required outside a browser");
    const typing = { throttleMs: 2000, idleMs: 3000, expireMs: 5000, ...options.typing };
    this.opts = {
      timeoutMs: options.timeoutMs ?? 10_000,
      queueTimeoutMs: options.queueTimeoutMs ?? 60_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      historyLimit: options.historyLimit ?? 50,
      validate: options.validate ?? true,
      backoff: { baseMs: 500, maxMs: 10_000, factor: 2, ...options.reconnect },
      outboxMaxAgeMs: options.outboxMaxAgeMs ?? 86_400_000,
    };
    this.seq = options.since ?? null;
    this.me = options.user ?? (typeof options.token === "string" ? jwtSubject(options.token) : undefined);
    this.typingSender = new TypingSender((status) => this.sendTyping(status), typing);
    this.typersTracker = new Typers(typing.expireMs, (users) => this.emit("typers", users));
    this.liveOnce = new Promise<void>((resolve, reject) => (this.settleLiveOnce = { resolve, reject }));
    this.liveOnce.catch(() => {}); // close() before connect() must not be an unhandled rejection
  }

  // ---- state ---------------------------------------------------------------------------

  get state(): ConnectionState {
    return this.current;
  }

  /** The seq of the last stored event delivered, or null before the first one. Store it to resume later with `since`. */
  get lastSeq(): number | null {
    return this.seq;
  }

  /** Who this client is (the `user` option, or the token's `sub`), when known. */
  get user(): string | undefined {
    return this.me;
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

  /** Members other than the author whose read marker reached the message: "seen by" that survives a reload. */
  readBy(messageId: string): string[] {
    const m = this.timeline.message(messageId);
    return m ? this.markers.seenBy(m) : [];
  }

  /** A member's read marker (this client's user by default; 0 before any). */
  readMarker(user = this.me): number {
    return user === undefined ? 0 : this.markers.of(user);
  }

  /** Loaded messages by others after this user's marker, not deleted. */
  get unread(): number {
    return this.me === undefined ? 0 : this.markers.unread(this.me, this.timeline.messages);
  }

  /** Who has seen a message (seen since this client connected), user to `seen_at`. */
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

  /** Operations not answered yet (queued offline or in flight). */
  get outbox(): number {
    return this.pending.size;
  }

  // ---- connection ----------------------------------------------------------------------

  /** Starts connecting; resolves once live the first time (it keeps retrying until then), rejects on close(). */
  connect(): Promise<void> {
    if (this.current === "idle") {
      (globalThis as { addEventListener?: (type: string, fn: () => void) => void }).addEventListener?.("online", this.onOnline);
      void this.open();
    }
    return this.liveOnce;
  }

  /** Skips the wait of a scheduled reconnect (e.g. when the browser reports it is online again). */
  reconnectNow(): void {
    if (this.current !== "reconnecting") return;
    clearTimeout(this.reconnectTimer);
    void this.open();
  }

  /** Closes the connection for good; operations not answered yet are rejected with `closed`. */
  close(): void {
    if (this.current === "closed") return;
    if (this.current === "live") this.typingSender.stop();
    this.typingSender.reset();
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.stableTimer);
    (globalThis as { removeEventListener?: (type: string, fn: () => void) => void }).removeEventListener?.("online", this.onOnline);
    const sock = this.ws;
    this.ws = null;
    if (sock) {
      this.detach(sock);
      try {
        sock.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    for (const p of [...this.pending.values()]) this.fail(p, new ChatRequestError("closed", "the client was closed", p.requestId));
    this.typersTracker.clear();
    this.online.clear();
    this.setState("closed");
    this.settleLiveOnce.reject(new ChatRequestError("closed", "the client was closed"));
  }

  private setState(state: ConnectionState, extra: Omit<StateChange, "state" | "previous"> = {}): void {
    const previous = this.current;
    if (previous === state) return;
    this.current = state;
    this.emit("state", { state, previous, ...extra });
  }

  private async open(): Promise<void> {
    this.setState("connecting");
    let url: string;
    try {
      const { url: base, token, user } = this.options;
      const params = new URLSearchParams();
      let tokenNow: string | undefined;
      if (user !== undefined) params.set("user", user);
      if (token !== undefined) {
        const t = typeof token === "function" ? await token({ expired: this.tokenExpired }) : token;
        params.set("token", t);
        this.me = user ?? jwtSubject(t) ?? this.me;
        this.tokenExpired = false;
        tokenNow = t;
      }
      if (this.current !== "connecting") return; // closed meanwhile
      this.restore();
      if (this.seq !== null) params.set("since", String(this.seq));
      const b = base === undefined ? globalThis.location.origin : typeof base === "function" ? await base() : base;
      url = socketUrl(b, this.group, params);
      this.http = { base: b, user, token: tokenNow };
    } catch (err) {
      if (this.current !== "connecting") return;
      this.emit("error", new ChatRequestError("internal", `cannot build the connection URL: ${(err as Error).message}`));
      return this.scheduleReconnect();
    }
    if (this.current !== "connecting") return; // closed meanwhile
    let sock: WebSocketLike;
    try {
      sock = new this.WS(url);
    } catch (err) {
      this.emit("error", new ChatRequestError("internal", `cannot open a WebSocket: ${(err as Error).message}`));
      return this.scheduleReconnect();
    }
    this.ws = sock;
    sock.onopen = () => this.opened(sock);
    sock.onmessage = (ev: { data: unknown }) => this.received(sock, ev.data);
    sock.onclose = (ev: { code?: number; reason?: string }) => {
      if (ev.code === CLOSE_TOKEN_EXPIRED && sock === this.ws) this.tokenExpired = true;
      this.lost(sock, ev.code ?? 1006, ev.reason ?? "");
    };
    sock.onerror = () => {}; // a close event always follows
    this.connectTimer = setTimeout(() => this.drop(sock, CLOSE_CONNECT_TIMEOUT, "connection attempt timed out"), this.opts.connectTimeoutMs);
  }

  private opened(sock: WebSocketLike): void {
    if (sock !== this.ws) return;
    clearTimeout(this.connectTimer);
    if (this.seq === null) this.goLive();
    else this.setState("syncing");
  }

  private goLive(): void {
    this.setState("live");
    // Only a connection that stays up resets the backoff: one that goes live and is dropped at
    // once (a gap that persists, a token refused right after the upgrade) backs off further.
    clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => (this.attempt = 0), this.opts.backoff.maxMs);
    // No position to resume from (a fresh start, or the server lost the stream we knew):
    // the newest page of history is the starting point.
    if (this.seq === null && this.opts.historyLimit > 0) this.loadLatest().catch(() => {}); // reported as an error event
    // Members' markers, for "seen by": `read` events keep them current from here on.
    this.loadMembers().catch((err) => this.emit("error", new ChatRequestError("unavailable", `cannot load the members' read markers: ${(err as Error).message}`)));
    this.flush();
    // Joins and leaves missed while offline: the answer (no request_id) replaces what we knew.
    if (this.options.presence && this.ws?.readyState === OPEN) this.ws.send(JSON.stringify({ operation: "presence" }));
    this.settleLiveOnce.resolve();
  }

  /** Abandons a socket (its late events are ignored) and reconnects. */
  private drop(sock: WebSocketLike, code: number, reason: string): void {
    if (sock !== this.ws) return;
    this.detach(sock);
    try {
      sock.close(code, reason);
    } catch {
      // not open yet, or already closing
    }
    this.lost(sock, code, reason);
  }

  private detach(sock: WebSocketLike): void {
    sock.onopen = sock.onmessage = sock.onclose = null;
    sock.onerror = () => {}; // ws throws an error event nobody listens to
  }

  private lost(sock: WebSocketLike, code: number, reason: string): void {
    if (sock !== this.ws) return;
    this.ws = null;
    clearTimeout(this.connectTimer);
    clearTimeout(this.stableTimer);
    for (const p of this.pending.values()) {
      p.sent = false;
      clearTimeout(p.answerTimer);
    }
    this.typingSender.reset();
    this.typersTracker.clear();
    if (this.current === "closed") return;
    this.scheduleReconnect(code, reason);
  }

  /** Every reconnect waits its backoff delay, whatever ended the connection. */
  private scheduleReconnect(code?: number, reason?: string): void {
    const delayMs = backoffDelay(this.attempt, this.opts.backoff);
    this.attempt++;
    this.setState("reconnecting", { delayMs, attempt: this.attempt, code, reason });
    this.reconnectTimer = setTimeout(() => void this.open(), delayMs);
  }

  // ---- incoming --------------------------------------------------------------------------

  private received(sock: WebSocketLike, data: unknown): void {
    if (sock !== this.ws) return;
    const text = typeof data === "string" ? data : data instanceof ArrayBuffer || ArrayBuffer.isView(data) ? decoder.decode(data as ArrayBuffer) : String(data);
    let frame: v.InferOutput<typeof ServerEvent>;
    try {
      const json: unknown = JSON.parse(text);
      if (this.opts.validate) {
        const parsed = v.safeParse(ServerEvent, json);
        if (!parsed.success) throw new Error(parsed.issues[0].message);
        frame = parsed.output;
      } else {
        frame = json as typeof frame;
      }
    } catch (err) {
      this.emit("error", new ChatRequestError("bad_request", `the server sent a frame outside the protocol (${(err as Error).message}): ${text.slice(0, 200)}`));
      return;
    }
    switch (frame.operation) {
      case "presence":
        this.online.answer(frame);
        return this.answered(frame);
      case "ack":
      case "history":
        return this.answered(frame);
      case "join":
      case "leave":
        return this.online.event(frame);
      case "error":
        return this.errored(frame);
      case "resumed":
        if (this.current !== "syncing") return;
        if (this.seq === null || frame.seq > this.seq) this.seq = frame.seq;
        return this.goLive();
      case "create":
      case "reply":
      case "update":
      case "delete":
        return this.stored(sock, frame);
      case "seen":
        return this.seenEvent(frame);
      case "read":
        return this.readEvent(frame);
      case "typing":
        return this.typingEvent(frame);
    }
  }

  private stored(sock: WebSocketLike, e: MessageEvent | DeleteEvent): void {
    if (this.seq !== null) {
      if (e.seq <= this.seq) return; // already delivered (a replay overlapping what we had)
      // The server promises no gap; should one appear anyway, have it replayed from where we are.
      if (e.seq !== this.seq + 1) return this.drop(sock, CLOSE_GAP, `gap: expected seq ${this.seq + 1}, got ${e.seq}`);
    }
    this.seq = e.seq;
    if (e.operation === "delete") {
      this.emit("deleted", e, this.timeline.deleted(e.message_id));
    } else {
      const m = e.message;
      this.timeline.stored(m, e.operation === "update");
      if (e.operation !== "update") this.typersTracker.stopped(m.user);
      this.emit(e.operation === "create" ? "created" : e.operation === "reply" ? "replied" : "updated", m, e);
    }
    this.emit("event", e);
    this.emit("change");
  }

  private readEvent(e: ReadEvent): void {
    if (!this.markers.read(e)) return;
    this.emit("read", e);
    this.emit("change");
  }

  private seenEvent(e: SeenEvent): void {
    if (!this.timeline.seen(e)) return;
    this.emit("seen", e);
    this.emit("change");
  }

  private typingEvent(e: TypingEvent): void {
    if (e.user !== this.me) {
      if (e.typing_status === "not_typing") this.typersTracker.stopped(e.user);
      else this.typersTracker.typing(e.user);
    }
    this.emit("typing", e);
  }

  private answered(frame: AckEvent | HistoryEvent | PresenceEvent): void {
    const p = frame.request_id === undefined ? undefined : this.pending.get(frame.request_id);
    if (!p) return; // answered after it timed out
    this.settle(p);
    p.resolve(frame);
  }

  private errored(e: ErrorEvent): void {
    const p = e.request_id === undefined ? undefined : this.pending.get(e.request_id);
    if (!p) {
      // While syncing the only error without a request is the refusal of our `since`: the server
      // does not have the stream we knew (its database was reset). Start over from its history.
      if (this.current === "syncing" && e.code === "bad_request") {
        this.seq = null;
        this.goLive();
      }
      this.emit("error", new ChatRequestError(e.code, e.message));
      return;
    }
    if ((e.code === "unavailable" || e.code === "rate_limited") && p.op !== "typing") {
      // The node cannot reach its database, is shutting down, or wants us to slow down: try
      // again a little later (same request_id, so a create is still stored once).
      p.sent = false;
      clearTimeout(p.answerTimer);
      p.retryTimer = setTimeout(() => {
        p.retryTimer = undefined;
        this.flush();
      }, backoffDelay(p.attempts - 1, this.opts.backoff));
      return;
    }
    if (e.code === "not_found" && p.op === "delete" && p.attempts > 1 && p.target !== undefined && this.timeline.wasDeleted(p.target)) {
      // A retried delete whose first attempt went through before the connection dropped.
      this.settle(p);
      p.resolve({ operation: "ack", group: this.group, request_id: p.requestId, message_id: p.target });
      return;
    }
    this.fail(p, new ChatRequestError(e.code, e.message, p.requestId));
  }

  // ---- outgoing --------------------------------------------------------------------------

  /**
   * Sends one frame of any operation and resolves with its answer (`ack`, or `history`).
   * The frame is checked against the protocol's schema first (`bad_request` without sending).
   */
  request<Op extends Operation>(op: Op, fields: RequestInput<Op>): Promise<Answer<Op>> {
    return this.enqueue(op, fields).promise as Promise<Answer<Op>>;
  }

  private enqueue(op: Operation, fields: object, target?: string): { promise: Promise<AckEvent | HistoryEvent | PresenceEvent>; pending?: Pending } {
    if (this.current === "closed") return { promise: Promise.reject(new ChatRequestError("closed", "the client was closed")) };
    const parsed = v.safeParse(ClientFrames[op] as v.GenericSchema, fields);
    if (!parsed.success) return { promise: Promise.reject(new ChatRequestError("bad_request", `${op}: ${parsed.issues[0].message}`)) };
    // A typing indicator is only worth sending now: it is never queued.
    if (op === "typing" && this.current !== "live") return { promise: Promise.reject(new ChatRequestError("unavailable", "not connected")) };
    const requestId = `${this.idPrefix}-${++this.counter}`;
    // The schema's output is what goes out: the text the server will store and broadcast (a
    // body's lone surrogates already replaced), so the outbox holds what others will see.
    const payload = JSON.stringify({ ...(parsed.output as object), operation: op, request_id: requestId });
    const { promise, pending } = this.track({ requestId, op, target, payload, at: Date.now() });
    this.pending.set(requestId, pending);
    this.persist(op);
    this.flush();
    return { promise, pending };
  }

  /** A pending operation with its promise and its lifetime (counted from `at`, reloads included). */
  private track(o: { requestId: string; op: Operation; target: string | undefined; payload: string; at: number }): { promise: Promise<AckEvent | HistoryEvent | PresenceEvent>; pending: Pending } {
    let p!: Pending;
    const promise = new Promise<AckEvent | HistoryEvent | PresenceEvent>((resolve, reject) => {
      p = { ...o, resolve, reject, sent: false, attempts: 0, sentVersion: 0 };
    });
    if (Number.isFinite(this.opts.queueTimeoutMs)) {
      const left = Math.max(0, o.at + this.opts.queueTimeoutMs - Date.now());
      p.lifeTimer = setTimeout(() => this.fail(p, new ChatRequestError("timeout", `${o.op} not answered within ${this.opts.queueTimeoutMs} ms`, o.requestId)), left);
    }
    return { promise, pending: p };
  }

  /** Writes the stored operations still waiting to `outboxStorage` (when `op` is one that is saved). */
  private persist(op: Operation): void {
    if (!this.saved || !isSaved(op)) return;
    const list: SavedOperation[] = [];
    for (const p of this.pending.values()) {
      if (isSaved(p.op)) list.push({ request_id: p.requestId, operation: p.op, payload: p.payload, target: p.target, at: p.at });
    }
    this.saved.save(list);
  }

  /** Once the user is known: takes over the operations an earlier client saved, ahead of any made since. */
  private restore(): void {
    if (this.restoreDone || !this.options.outboxStorage) return;
    this.restoreDone = true;
    const key = `chatroom.outbox.${this.group}.${this.me ?? ""}`;
    this.saved = new SavedOutbox(this.options.outboxStorage, key, (err) => this.emit("error", new ChatRequestError("internal", `the outbox could not be saved: ${err.message}`)));
    const maxAge = Math.min(this.opts.queueTimeoutMs, this.opts.outboxMaxAgeMs);
    const restored: RestoredOperation[] = [];
    const before = [...this.pending];
    this.pending.clear();
    for (const s of this.saved.claim(Date.now() - maxAge)) {
      if (this.pending.has(s.request_id) || before.some(([id]) => id === s.request_id)) continue;
      const { promise, pending } = this.track({ requestId: s.request_id, op: s.operation, target: s.target, payload: s.payload, at: s.at });
      pending.attempts = 1; // it may have reached the server before the reload
      this.pending.set(s.request_id, pending);
      promise.catch(() => {}); // the application sees it through `restored`, if it listens
      const { operation: _, request_id: __, ...frame } = JSON.parse(s.payload) as Record<string, unknown>;
      restored.push({ requestId: s.request_id, operation: s.operation, frame, result: promise as Promise<AckEvent> });
    }
    for (const [id, p] of before) this.pending.set(id, p);
    this.persist("create");
    if (restored.length > 0) this.emit("restored", restored);
  }

  /** Sends, in order, every operation waiting for a live connection. */
  private flush(): void {
    if (this.current !== "live" || this.ws?.readyState !== OPEN) return;
    for (const p of this.pending.values()) if (!p.sent && p.retryTimer === undefined) this.transmit(p);
  }

  private transmit(p: Pending): void {
    try {
      this.ws!.send(p.payload);
    } catch {
      return; // the socket is closing; the close handler requeues
    }
    p.sent = true;
    p.attempts++;
    p.sentVersion = this.timeline.version;
    clearTimeout(p.answerTimer);
    p.answerTimer = setTimeout(() => this.fail(p, new ChatRequestError("timeout", `no answer to ${p.op} within ${this.opts.timeoutMs} ms`, p.requestId)), this.opts.timeoutMs);
  }

  private settle(p: Pending): void {
    clearTimeout(p.answerTimer);
    clearTimeout(p.lifeTimer);
    clearTimeout(p.retryTimer);
    this.pending.delete(p.requestId);
    this.persist(p.op);
  }

  private fail(p: Pending, err: ChatRequestError): void {
    if (!this.pending.has(p.requestId)) return;
    this.settle(p);
    p.reject(err);
  }

  private sendTyping(status: "typing" | "not_typing"): void {
    if (this.current !== "live" || this.ws?.readyState !== OPEN) return;
    try {
      // No request_id: an indicator needs no ack.
      this.ws.send(JSON.stringify({ operation: "typing", typing_status: status }));
    } catch {
      // closing
    }
  }

  // ---- operations ------------------------------------------------------------------------

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
    return this.enqueue("delete", { message_id: messageId }, messageId).promise as Promise<AckEvent>;
  }

  seen(messageId: string): Promise<AckEvent> {
    return this.request("seen", { message_id: messageId });
  }

  /** Moves this user's read marker forward to `seq` (default: the last event delivered); the ack carries the marker. */
  async read(seq = this.seq ?? 0): Promise<AckEvent> {
    const ack = await this.request("read", { seq });
    if (this.me !== undefined && ack.read_seq !== undefined && this.markers.set(this.me, ack.read_seq)) this.emit("change");
    return ack;
  }

  /** Reads every member's marker (GET /api/groups/<group>/members, all pages). */
  async loadMembers(): Promise<void> {
    const http = this.http;
    if (!http || !http.base) return;
    let before: string | undefined;
    for (let page = 0; page < 100; page++) {
      const url = new URL(`${http.base.replace(/\/+$/, "")}/api/groups/${encodeURIComponent(this.group)}/members`);
      url.searchParams.set("limit", "100");
      if (before !== undefined) url.searchParams.set("before", before);
      if (http.user !== undefined) url.searchParams.set("user", http.user);
      const res = await fetch(url, { headers: http.token ? { authorization: `Bearer ${http.token}` } : {} });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const body = (await res.json()) as { members: MemberView[]; has_more: boolean };
      this.markers.load(body.members);
      this.emit("change");
      if (!body.has_more || body.members.length === 0) return;
      before = body.members[body.members.length - 1]!.user;
    }
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

  /** Loads the page before the oldest known message into `messages`. */
  async loadOlder(limit = this.opts.historyLimit || 50): Promise<HistoryPage> {
    const before = this.timeline.oldestId;
    if (before === undefined) return this.loadLatest(limit);
    const { promise } = this.enqueue("history", { before, limit });
    const h = (await promise) as HistoryEvent;
    this.timeline.older(h.messages, h.has_more);
    const page = { messages: h.messages, hasMore: h.has_more };
    this.emit("history", page, false);
    this.emit("change");
    return page;
  }

  /** Replaces `messages` with the newest page, keeping what live events changed meanwhile. */
  private async loadLatest(limit = this.opts.historyLimit): Promise<HistoryPage> {
    const { promise, pending } = this.enqueue("history", { limit });
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
}

function typeOf(file: FileInput | undefined): MessageType {
  if (file === undefined) return "text";
  return typeof file !== "string" && file.content_type.toLowerCase().startsWith("image/") ? "image" : "file";
}

/** Creates a client and connects it; resolves once it is live. */
export async function connectChat(options: ChatClientOptions): Promise<ChatClient> {
  const client = new ChatClient(options);
  await client.connect();
  return client;
}
