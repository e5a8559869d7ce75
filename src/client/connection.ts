// One connection for all of a user's conversations: one socket, a GroupView per followed group,
// one outbox. What it promises:
// - it keeps the socket up: reconnect with jittered exponential backoff, whatever ended the last
//   one (network, a gap, an expired token); the delay resets only after a socket stayed open for
//   `reconnect.maxMs`; a rebalance close (4012) reconnects after the first, jittered delay; a
//   4001 (token expired) calls the token function with `{expired: true}` for a fresh token;
// - after every reconnect each group resumes from its own last seq (`subscribe` with `since`),
//   so each view gets every stored event once, in order, with no gap;
// - its one outbox (outbox.ts) sends each group's operations once that group is live again, in
//   the order they were made, with their original request_ids (stored once), and with
//   `outboxStorage` keeps them across a page reload, per group and user.
// Two shapes of socket, one implementation: `/ws/` (the default: `subscribe`/`unsubscribe` per
// group, every frame names its group), or, with the `group` option, the per-group endpoint
// `/ws/chat/<group>/` that a seed-style server speaks (one group, resumed with `?since=`, a gap
// reconnects). ChatClient is the one-group view over the second shape.
import * as v from "valibot";
import { ClientFrames, GroupName, ServerEvent, type AckEvent, type ConversationView, type GroupsEvent, type Operation } from "../protocol/index.ts";
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import { Emitter } from "./emitter.ts";
import { fetchRetrying } from "./http-retry.ts";
import { ChatRequestError } from "./errors.ts";
import { GroupView, type ViewConnection } from "./group-view.ts";
import { Outbox, type Answer, type Pending } from "./outbox.ts";
import type { OutboxStorage } from "./saved-outbox.ts";
import {
  CLOSE_CONNECT_TIMEOUT,
  CLOSE_GAP,
  CLOSE_REBALANCE,
  CLOSE_TOKEN_EXPIRED,
  frameText,
  jwtSubject,
  muxUrl,
  OPEN,
  randomPrefix,
  socketUrl,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./socket.ts";
import type { TypingOptions } from "./typing.ts";

type MaybeAsync<T> = T | Promise<T>;

export interface ChatConnectionOptions {
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
   * Single-group mode: speak the per-group endpoint `/ws/chat/<group>/` (a seed-style server)
   * and follow only this group. Default: the multiplexed `/ws/`.
   */
  group?: string;
  /** Messages loaded when a group starts without a seq to resume from; 0 loads none. Default 50. */
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
   * Where to keep the outbox across reloads (`localStorage` in a page): each group's operations
   * made before a reload are sent again, with their original request_ids, once a later
   * connection of the same user follows the group. Default: none (memory only).
   */
  outboxStorage?: OutboxStorage;
  /** The oldest saved operation sent again after a reload. Default 86400000 (24 h, the server's default RETRY_WINDOW_S). */
  outboxMaxAgeMs?: number;
  /**
   * Keep each view's `presence` (who is online) current: its subscription asks for the group's
   * join/leave events, and the list is asked each time the group goes live. Default false.
   */
  presence?: boolean;
  /**
   * Load the members' markers ("seen by") and ask `presence` only for focused views
   * (`view.focus()`), for an application that follows many groups for their badges and shows
   * one: each other group costs its subscribe only. Default false: every view loads them.
   */
  focusOnly?: boolean;
}

/**
 * - `idle`: constructed, not connecting yet (operations already queue);
 * - `connecting`: a socket is opening;
 * - `live`: the socket is open (each group has its own state: GroupView.state);
 * - `reconnecting`: the socket is gone; the next attempt is scheduled;
 * - `closed`: `close()` was called.
 */
export type MuxState = "idle" | "connecting" | "live" | "reconnecting" | "closed";

export interface ConnectionChange {
  state: MuxState;
  previous: MuxState;
  /** reconnecting: the delay before the next attempt, and how many attempts failed so far. */
  delayMs?: number;
  attempt?: number;
  /** reconnecting: the WebSocket close code and reason of the connection that ended. */
  code?: number;
  reason?: string;
}

export interface ChatConnectionEvents {
  state: (change: ConnectionChange) => void;
  /** An error that concerns no one group: a frame outside the protocol, no token, no URL. */
  error: (error: ChatRequestError) => void;
}

export class ChatConnection extends Emitter<ChatConnectionEvents> implements ViewConnection {
  private readonly views = new Map<string, GroupView>();
  private readonly outbox: Outbox;
  /** Subscribes and unsubscribes of the connection's own, answered here (never resent). */
  private readonly internal = new Map<string, (answer: AckEvent | null, error: ChatRequestError | null) => void>();
  private readonly WS: WebSocketConstructor;
  private readonly single: string | undefined;
  private readonly opts: {
    historyLimit: number;
    connectTimeoutMs: number;
    validate: boolean;
    backoff: Required<BackoffOptions>;
    typing: Required<TypingOptions>;
    presence: boolean;
    focusOnly: boolean;
  };
  private current: MuxState = "idle";
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private counter = 0;
  private readonly idPrefix = randomPrefix();
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Resets the backoff once a socket has stayed open long enough. */
  private stableTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly resyncTimers = new Map<string, ReturnType<typeof setTimeout>>();
  /** The server closed the last socket because the token expired: ask for a fresh one. */
  private tokenExpired = false;
  private me: string | undefined;
  /** Where and as whom the last socket went, for HTTP calls (members). */
  private http: { base: string; token?: string } | null = null;
  private readonly onOnline = () => this.reconnectNow();

  constructor(private readonly options: ChatConnectionOptions) {
    super((err) => console.error("chatroom client: a listener threw", err));
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError("no WebSocket class: pass one as the WebSocket option (in Node 20: the ws package's)");
    this.WS = WS;
    if (options.url === undefined && typeof globalThis.location?.origin !== "string") throw new TypeError("url is required outside a browser");
    if (options.group !== undefined) checkGroup(options.group);
    this.single = options.group;
    const backoff = { baseMs: 500, maxMs: 10_000, factor: 2, ...options.reconnect };
    this.opts = {
      historyLimit: options.historyLimit ?? 50,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      validate: options.validate ?? true,
      backoff,
      typing: { throttleMs: 2000, idleMs: 3000, expireMs: 5000, ...options.typing },
      presence: options.presence ?? false,
      focusOnly: options.focusOnly ?? false,
    };
    this.outbox = new Outbox(
      {
        timeoutMs: options.timeoutMs ?? 10_000,
        queueTimeoutMs: options.queueTimeoutMs ?? 60_000,
        backoff,
        outboxMaxAgeMs: options.outboxMaxAgeMs ?? 86_400_000,
        storage: options.outboxStorage,
      },
      () => this.flush(),
      (err) => this.emit("error", new ChatRequestError("internal", `the outbox could not be saved: ${err.message}`)),
    );
    this.me = options.user ?? (typeof options.token === "string" ? jwtSubject(options.token) : undefined);
  }

  // ---- state ---------------------------------------------------------------------------

  get state(): MuxState {
    return this.current;
  }

  /** Who this connection is (the `user` option, or the token's `sub`), when known. */
  get user(): string | undefined {
    return this.me;
  }

  /** The view of a followed group, if it is followed. */
  view(group: string): GroupView | undefined {
    return this.views.get(group);
  }

  /** The groups followed, in the order they were first followed. */
  get groups(): string[] {
    return [...this.views.keys()];
  }

  /** Operations not answered yet, of every group. */
  get pendingCount(): number {
    return this.outbox.count();
  }

  outboxCount(group: string): number {
    return this.outbox.count(group);
  }

  // ---- following groups ----------------------------------------------------------------

  /**
   * The view of a group, followed from now on (from `since`, a seq stored earlier, when given;
   * `known`: a conversation list entry to start from instead of loading history). Does not
   * connect: `connect()` or `subscribe()` does.
   */
  follow(group: string, opts: { since?: number; known?: ConversationView } = {}): GroupView {
    checkGroup(group);
    if (this.single !== undefined && group !== this.single) throw new TypeError(`this connection follows group ${this.single} only (single-group mode)`);
    if (this.current === "closed") throw new ChatRequestError("closed", "the connection was closed");
    let view = this.views.get(group);
    if (view) return view;
    const since = opts.since ?? opts.known?.last_seq ?? null;
    view = new GroupView(group, this, since, this.opts, this.opts.backoff.maxMs);
    this.views.set(group, view);
    if (opts.known) view.seed(opts.known);
    view.on("state", (s) => {
      if (s === "live") this.flush();
    });
    // Saved operations are taken over when connecting starts (listeners are attached by then),
    // or now for a group followed later, once the user (part of the key) is known.
    if (this.current !== "idle" && (this.me !== undefined || this.options.token === undefined)) this.restore(view);
    if (this.single === undefined && this.current === "live") this.sendSubscribe(view);
    return view;
  }

  /** Follows a group and connects; resolves once the group is live (refused: `forbidden`, `too_large`, `bad_request`). */
  async subscribe(group: string, opts: { since?: number; known?: ConversationView } = {}): Promise<GroupView> {
    const view = this.follow(group, opts);
    this.connect();
    await view.subscribed;
    return view;
  }

  /** Stops following a group: its view closes, and its operations not answered yet are rejected with `closed`. */
  async unsubscribe(group: string): Promise<void> {
    const view = this.views.get(group);
    if (!view) return;
    if (this.single !== undefined) throw new TypeError("a single-group connection cannot unsubscribe its group: close it");
    this.views.delete(group);
    clearTimeout(this.resyncTimers.get(group));
    this.resyncTimers.delete(group);
    view.closed();
    this.outbox.close("the group was unsubscribed", group);
    if (this.current === "live") this.internalRequest(group, "unsubscribe");
  }

  /** The user's conversation list (most recent activity first), as the server answers it. */
  async conversations(opts: { before?: string; limit?: number } = {}): Promise<GroupsEvent> {
    return (await this.request(null, "groups", opts)) as GroupsEvent;
  }

  /** Sends one frame naming `group` (null: `groups`) and resolves with its answer; kept in the outbox until answered. */
  request(group: string | null, op: Operation, fields: object): Promise<Answer> {
    return this.enqueue(group, op, fields).promise;
  }

  enqueue(group: string | null, op: Operation, fields: object, target?: string): { promise: Promise<Answer>; pending?: Pending } {
    if (this.current === "closed") return { promise: Promise.reject(new ChatRequestError("closed", "the connection was closed")) };
    const parsed = v.safeParse(ClientFrames[op] as v.GenericSchema, fields);
    if (!parsed.success) return { promise: Promise.reject(new ChatRequestError("bad_request", `${op}: ${parsed.issues[0].message}`)) };
    // A typing indicator is only worth sending now: it is never queued.
    if (op === "typing" && !this.ready(group)) return { promise: Promise.reject(new ChatRequestError("unavailable", "not connected")) };
    const requestId = `${this.idPrefix}-${++this.counter}`;
    // The schema's output is what goes out: the text the server will store and broadcast (a
    // body's lone surrogates already replaced), so the outbox holds what others will see.
    const payload = this.frame(group, op, parsed.output as object, requestId);
    const { promise, pending } = this.outbox.add({ requestId, op, group, payload, target });
    this.flush();
    return { promise, pending };
  }

  sendNow(group: string, frame: Record<string, unknown>): void {
    if (!this.ready(group)) return;
    try {
      this.ws!.send(this.frame(group, String(frame.operation), frame));
    } catch {
      // closing
    }
  }

  /** GET on the server with this connection's identity (`?user=`, or the token as Bearer); a busy server (503, 429) is asked again (http-retry.ts). */
  async fetchJson(path: string): Promise<unknown> {
    const http = this.http;
    if (!http) throw new Error("not connected yet");
    const base = new URL(http.base);
    if (base.protocol === "ws:") base.protocol = "http:";
    else if (base.protocol === "wss:") base.protocol = "https:";
    const [pathname, query] = path.split("?") as [string, string | undefined];
    const url = new URL(base.toString());
    url.pathname = `${url.pathname.replace(/\/+$/, "")}${pathname}`;
    url.search = query ?? "";
    if (this.options.user !== undefined) url.searchParams.set("user", this.options.user);
    const res = await fetchRetrying(url, { headers: http.token ? { authorization: `Bearer ${http.token}` } : {} });
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw new Error(`HTTP ${res.status} for ${url.pathname}`);
    }
    return res.json();
  }

  // ---- the socket ----------------------------------------------------------------------

  /** Starts connecting (once; later calls do nothing). */
  connect(): void {
    if (this.current !== "idle") return;
    (globalThis as { addEventListener?: (type: string, fn: () => void) => void }).addEventListener?.("online", this.onOnline);
    void this.open();
  }

  /** Skips the wait of a scheduled reconnect (e.g. when the browser reports it is online again). */
  reconnectNow(): void {
    if (this.current !== "reconnecting") return;
    clearTimeout(this.reconnectTimer);
    void this.open();
  }

  /** Closes the connection for good; every view closes and operations not answered yet are rejected with `closed` (their saved copies go too). */
  close(): void {
    if (this.current === "closed") return;
    this.setState("closed");
    for (const view of this.views.values()) view.closed();
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.stableTimer);
    for (const t of this.resyncTimers.values()) clearTimeout(t);
    (globalThis as { removeEventListener?: (type: string, fn: () => void) => void }).removeEventListener?.("online", this.onOnline);
    const sock = this.ws;
    this.ws = null;
    if (sock) {
      detach(sock);
      try {
        sock.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    this.outbox.close("the client was closed");
    for (const [id, answer] of this.internal) {
      this.internal.delete(id);
      answer(null, new ChatRequestError("closed", "the connection was closed"));
    }
  }

  private setState(state: MuxState, extra: Omit<ConnectionChange, "state" | "previous"> = {}): void {
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
      for (const view of this.views.values()) this.restore(view);
      const b = base === undefined ? globalThis.location.origin : typeof base === "function" ? await base() : base;
      if (this.single !== undefined) {
        const seq = this.views.get(this.single)?.lastSeq ?? null;
        if (seq !== null) params.set("since", String(seq));
        // Join/leave events come only to the sockets that ask for them.
        if (this.opts.presence) params.set("presence", "1");
        url = socketUrl(b, this.single, params);
      } else {
        url = muxUrl(b, params);
      }
      this.http = { base: b, token: tokenNow };
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
      // A rebalance (4012) is a move, not a failure: the first, jittered delay, not a grown one.
      if (ev.code === CLOSE_REBALANCE && sock === this.ws) this.attempt = 0;
      this.lost(sock, ev.code ?? 1006, ev.reason ?? "");
    };
    sock.onerror = () => {}; // a close event always follows
    this.connectTimer = setTimeout(() => {
      // After a stalled event loop, expired timers run before the socket's pending open event:
      // a socket that is open already is not timed out.
      if (sock.readyState === OPEN) return;
      this.drop(sock, CLOSE_CONNECT_TIMEOUT, "connection attempt timed out");
    }, this.opts.connectTimeoutMs);
  }

  private opened(sock: WebSocketLike): void {
    if (sock !== this.ws) return;
    clearTimeout(this.connectTimer);
    // Only a socket that stays up resets the backoff: one dropped at once (a gap that persists,
    // a token refused right after the upgrade) backs off further.
    clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => (this.attempt = 0), this.opts.backoff.maxMs);
    this.setState("live");
    if (this.single !== undefined) {
      const view = this.views.get(this.single);
      view?.opened(view.lastSeq !== null);
    } else {
      for (const view of this.views.values()) this.sendSubscribe(view);
    }
    this.flush();
  }

  /** Abandons a socket (its late events are ignored) and reconnects. */
  private drop(sock: WebSocketLike, code: number, reason: string): void {
    if (sock !== this.ws) return;
    detach(sock);
    try {
      sock.close(code, reason);
    } catch {
      // not open yet, or already closing
    }
    this.lost(sock, code, reason);
  }

  private lost(sock: WebSocketLike, code: number, reason: string): void {
    if (sock !== this.ws) return;
    this.ws = null;
    clearTimeout(this.connectTimer);
    clearTimeout(this.stableTimer);
    for (const t of this.resyncTimers.values()) clearTimeout(t);
    this.resyncTimers.clear();
    this.outbox.lost();
    for (const [id, answer] of this.internal) {
      this.internal.delete(id);
      answer(null, null); // lost with the socket: the next one subscribes afresh
    }
    // The connection's state first, so that whoever watches both never sees a group offline on a live socket.
    if (this.current !== "closed") this.scheduleReconnect(code, reason);
    for (const view of this.views.values()) view.lost();
  }

  /** Every reconnect waits its backoff delay, whatever ended the connection. */
  private scheduleReconnect(code?: number, reason?: string): void {
    const delayMs = backoffDelay(this.attempt, this.opts.backoff);
    this.attempt++;
    this.setState("reconnecting", { delayMs, attempt: this.attempt, code, reason });
    this.reconnectTimer = setTimeout(() => void this.open(), delayMs);
  }

  /**
   * A view saw a seq gap. Single-group: reconnect (after the backoff) with `since`. Multiplexed:
   * unsubscribe the group and subscribe it again from its seq after its own backoff, the other
   * groups untouched.
   */
  resync(view: GroupView): void {
    const sock = this.ws;
    if (!sock || this.views.get(view.group) !== view) return;
    const expected = (view.lastSeq ?? 0) + 1;
    if (this.single !== undefined) return this.drop(sock, CLOSE_GAP, `gap: expected seq ${expected}`);
    if (this.resyncTimers.has(view.group)) return;
    view.resubscribing();
    this.internalRequest(view.group, "unsubscribe");
    this.resubscribeLater(view);
  }

  /** Subscribes the group again from its seq after its own backoff (a gap, a subscribe not answered or answered `unavailable`). */
  private resubscribeLater(view: GroupView): void {
    const sock = this.ws;
    if (!sock || this.resyncTimers.has(view.group)) return;
    view.resubscribing();
    const delay = backoffDelay(view.gaps++, this.opts.backoff);
    this.resyncTimers.set(
      view.group,
      setTimeout(() => {
        this.resyncTimers.delete(view.group);
        if (this.ws === sock && this.views.get(view.group) === view) this.sendSubscribe(view);
      }, delay),
    );
  }

  private sendSubscribe(view: GroupView): void {
    const since = view.lastSeq;
    view.resubscribing();
    // Answered synchronously: the replay and `resumed` may follow the ack in the same read.
    // Join/leave events come only to the subscriptions that ask for them.
    const fields = { ...(since === null ? {} : { since }), ...(this.opts.presence ? { presence: true } : {}) };
    this.internalRequest(view.group, "subscribe", fields, (ack, err) => {
      if (this.views.get(view.group) !== view) return;
      if (ack) return view.subscribeAnswered(ack.seq ?? 0, since !== null);
      if (!err) return; // lost with the socket: the next one subscribes afresh
      if (err.code === "timeout" || err.code === "unavailable" || err.code === "rate_limited") return this.resubscribeLater(view);
      // Refused for good (forbidden, too_large, bad_request): the view is not followed.
      this.views.delete(view.group);
      this.outbox.close(`the group could not be followed: ${err.message}`, view.group);
      view.subscribeFailed(err);
      view.closed();
    });
  }

  /**
   * A subscribe or unsubscribe of the connection's own: sent now on this socket, never resent;
   * `done` is called once, synchronously with its answer (null and null: lost with the socket).
   */
  private internalRequest(group: string, op: "subscribe" | "unsubscribe", fields: object = {}, done: (answer: AckEvent | null, error: ChatRequestError | null) => void = () => {}): void {
    const sock = this.ws;
    if (!sock || sock.readyState !== OPEN) return done(null, null);
    const requestId = `${this.idPrefix}-s${++this.counter}`;
    const timeoutMs = this.options.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      if (this.internal.delete(requestId)) done(null, new ChatRequestError("timeout", `no answer to ${op} within ${timeoutMs} ms`, requestId));
    }, timeoutMs);
    this.internal.set(requestId, (answer, error) => {
      clearTimeout(timer);
      done(answer, error);
    });
    try {
      sock.send(this.frame(group, op, fields, requestId));
    } catch {
      // closing: the close handler answers it
    }
  }

  /** Whether a frame naming `group` can go now: at once for `groups` and groups not followed (leave), once live for a followed group. */
  private ready(group: string | null): boolean {
    if (this.current !== "live" || this.ws?.readyState !== OPEN) return false;
    const view = group === null ? undefined : this.views.get(group);
    return view === undefined || view.state === "live";
  }

  /** Sends, in order, every operation whose group is live. */
  private flush(): void {
    if (this.current !== "live") return;
    for (const p of this.outbox.waiting((g) => this.ready(g))) {
      try {
        this.ws!.send(p.payload);
      } catch {
        return; // the socket is closing; the close handler requeues
      }
      this.outbox.sent(p, (p.group === null ? undefined : this.views.get(p.group)?.version) ?? 0);
    }
  }

  /** A frame as this socket's endpoint wants it: `/ws/` frames name their group, per-group ones need not. */
  private frame(group: string | null, op: string, fields: object, requestId?: string): string {
    const { group: _, operation: __, request_id: ___, ...rest } = fields as Record<string, unknown>;
    const named = group !== null && this.single === undefined ? { group } : {};
    return JSON.stringify({ ...rest, operation: op, ...named, ...(requestId === undefined ? {} : { request_id: requestId }) });
  }

  /** Takes over what an earlier client saved for this group (once the user is known). */
  private restore(view: GroupView): void {
    const ops = this.outbox.restore(view.group, this.me, (f) => this.frame(view.group, String(f.operation), f, String(f.request_id)));
    view.restored(ops);
  }

  // ---- incoming --------------------------------------------------------------------------

  private received(sock: WebSocketLike, data: unknown): void {
    if (sock !== this.ws) return;
    const text = frameText(data);
    let f: ServerEvent;
    try {
      const json: unknown = JSON.parse(text);
      if (this.opts.validate) {
        const parsed = v.safeParse(ServerEvent, json);
        if (!parsed.success) throw new Error(parsed.issues[0].message);
        f = parsed.output;
      } else {
        f = json as ServerEvent;
      }
    } catch (err) {
      this.emit("error", new ChatRequestError("bad_request", `the server sent a frame outside the protocol (${(err as Error).message}): ${text.slice(0, 200)}`));
      return;
    }
    if (f.operation === "ack" || f.operation === "error" || f.operation === "history" || f.operation === "groups" || f.operation === "presence") {
      const rid = (f as { request_id?: string }).request_id;
      const internal = rid === undefined ? undefined : this.internal.get(rid);
      if (internal) {
        this.internal.delete(rid!);
        return f.operation === "error" ? internal(null, new ChatRequestError(f.code, f.message, rid)) : internal(f as AckEvent, null);
      }
      const p = this.outbox.get(rid);
      if (p) {
        if (f.operation === "presence") this.viewOf(f.group)?.receive(f);
        return f.operation === "error" ? this.refused(p, f.code, f.message) : this.outbox.answered(p, f);
      }
      if (f.operation === "ack" || f.operation === "history" || f.operation === "groups") return; // answered after it timed out
      if (f.operation === "error" && f.request_id !== undefined) return this.emit("error", new ChatRequestError(f.code, f.message, f.request_id)); // answers an operation that timed out
      const view = this.viewOf(f.group);
      if (view) return view.receive(f);
      if (f.operation === "error") this.emit("error", new ChatRequestError(f.code, f.message));
      return;
    }
    this.viewOf(f.group)?.receive(f);
  }

  /** The view a frame is about: in single-group mode, the one group whatever the frame says. */
  private viewOf(group: string | undefined): GroupView | undefined {
    if (this.single !== undefined) return this.views.get(this.single);
    return group === undefined ? undefined : this.views.get(group);
  }

  private refused(p: Pending, code: ChatRequestError["code"], message: string): void {
    if ((code === "unavailable" || code === "rate_limited") && p.op !== "typing") {
      // The node cannot reach its database, is shutting down, or wants us to slow down: try
      // again a little later (same request_id, so a create is still stored once).
      return this.outbox.retryLater(p);
    }
    const view = p.group === null ? undefined : this.views.get(p.group);
    if (code === "not_found" && p.op === "delete" && p.attempts > 1 && p.target !== undefined && view?.wasDeleted(p.target)) {
      // A retried delete whose first attempt went through before the connection dropped.
      return this.outbox.answered(p, { operation: "ack", group: p.group!, request_id: p.requestId, message_id: p.target });
    }
    this.outbox.fail(p, new ChatRequestError(code, message, p.requestId));
  }
}

function checkGroup(group: string): void {
  if (!v.is(GroupName, group)) throw new TypeError(`invalid group name ${JSON.stringify(group)}: 1 to 99 characters of A-Z a-z 0-9 - _ .`);
}

function detach(sock: WebSocketLike): void {
  sock.onopen = sock.onmessage = sock.onclose = null;
  sock.onerror = () => {}; // ws throws an error event nobody listens to
}

export { CLOSE_REBALANCE, CLOSE_TOKEN_EXPIRED, muxUrl, socketUrl };
